"""Predicates and weight arithmetic shared by the built-in passes."""

from __future__ import annotations

import numpy as np

from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.patterns import set_weight

WEIGHTED = ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise", "InnerProduct")
"""Layer types with a per-output-channel weight layout and a fused activation (params 9/10)."""

PASS_NAMES = {"Convolution": "convolution", "ConvolutionDepthWise": "convolutiondepthwise",
              "Deconvolution": "deconvolution", "DeconvolutionDepthWise": "deconvolutiondepthwise",
              "InnerProduct": "innerproduct"}
"""How ncnnoptimize spells each layer type in its pass names (``fuse_convolution_batchnorm``)."""


def single_output(layer: Layer) -> bool:
    """One output blob."""
    return len(layer.outputs) == 1


def no_activation(layer: Layer) -> bool:
    """No fused activation yet (folding a constant after an activation would be wrong)."""
    return layer.p("activation_type") == 0


def param(layer: Layer, name: str) -> int | float | list:
    """A param by name, 0 when the layer type has no such param."""
    schema = layer.params.schema
    return layer.p(name) if schema is not None and name in schema.by_name else 0


def float_weights(layer: Layer) -> bool:
    """Static float weights that can be rescaled: not int8, not dynamic."""
    if param(layer, "int8_scale_term") or param(layer, "dynamic_weight") or "weight" not in layer.weights:
        return False
    return all(w.storage != "int8" for w in layer.weights.values())


def foldable(layer: Layer) -> bool:
    """A weighted layer a following per-channel affine op can be folded into."""
    return single_output(layer) and no_activation(layer) and float_weights(layer)


def shape(graph: Graph, blob: str) -> tuple[int, ...] | None:
    """The inferred shape of a blob, or None when shapes are unknown."""
    return graph.shapes.get(blob)


def memorydata_shape(layer: Layer) -> tuple[int, ...]:
    """A MemoryData layer's blob shape in numpy order (c, d, h, w with unset dims left out)."""
    dims = tuple(x for x in (layer.p("c"), layer.p("d"), layer.p("h"), layer.p("w")) if x)
    return dims or (1,)


def scale_and_shift(layer: Layer, scale: np.ndarray | None, shift: np.ndarray | None) -> None:
    """``y = x * scale + shift`` per output channel, folded into the weights and bias.

    Each output channel's weights are scaled (ncnn's layouts keep them contiguous), the bias is
    ``bias * scale + shift``; a layer without bias gets one when ``shift`` is given.
    """
    n = layer.p("num_output")
    weight = layer.weight("weight").reshape(n, -1)
    has_bias = bool(layer.p("bias_term"))
    bias = layer.weight("bias").reshape(n) if has_bias else None
    if scale is not None:
        scale = np.asarray(scale, np.float32).reshape(n)
        set_weight(layer, "weight", weight * scale[:, None])
        if bias is not None:
            bias = bias * scale
    if shift is not None:
        shift = np.asarray(shift, np.float32).reshape(n)
        bias = shift.copy() if bias is None else bias + shift
    if bias is not None:
        layer.params["bias_term"] = 1
        layer.weights["bias"] = Weight(np.asarray(bias, np.float32), "raw")
