"""Multiply-accumulate counts per layer, as ncnn reports them ("mac").

Only matrix-product layers count: Convolution-like layers ``outw*outh*outc * kw*kh*inc/group``,
InnerProduct ``num_output * input size``, Gemm ``M*N*K``.  Everything else (pooling, activations,
data movement) counts zero, which is what ncnn's figure (418 M for SqueezeNet v1.1 at 227x227)
includes.
"""

from __future__ import annotations

import math

from ncnnc.core.ir import Graph, Layer


def layer_macs(layer: Layer, shapes: dict[str, tuple[int, ...]]) -> int:
    """MACs of one layer, given inferred blob shapes."""
    if not layer.outputs or layer.outputs[0] not in shapes or not layer.inputs:
        return 0
    out, ins = shapes[layer.outputs[0]], shapes.get(layer.inputs[0], ())
    t = layer.type
    if t in ("Convolution", "ConvolutionDepthWise"):
        group = layer.p("group") if t == "ConvolutionDepthWise" else 1
        inc = ins[0] if len(ins) == 3 else 1
        return math.prod(out) * layer.p("kernel_w") * layer.p("kernel_h") * inc // group
    if t in ("Deconvolution", "DeconvolutionDepthWise"):
        group = layer.p("group") if t == "DeconvolutionDepthWise" else 1
        return math.prod(ins) * layer.p("kernel_w") * layer.p("kernel_h") * layer.p("num_output") // group
    if t == "Gemm":
        k = layer.p("constantK")
        if not k and not layer.p("constantA") and len(ins) >= 2:
            k = ins[-2] if layer.p("transA") else ins[-1]
        return math.prod(out) * k
    if t == "InnerProduct":
        rows = ins[0] if len(ins) == 2 and len(out) == 2 else 1
        return rows * layer.p("weight_data_size")
    return 0


def graph_macs(graph: Graph) -> dict[str, int]:
    """``layer name -> MACs`` for every layer (run shape inference first)."""
    return {layer.name: layer_macs(layer, graph.shapes) for layer in graph.layers}
