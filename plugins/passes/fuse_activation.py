"""Fuse an activation layer into the Convolution/Deconvolution/InnerProduct before it.

ncnn's weighted layers apply an activation themselves: param 9 ``activation_type`` and param 10
``activation_params`` (1 ReLU, 2 leaky ReLU ``[slope]``, 3 Clip ``[min, max]``, 4 Sigmoid,
5 Mish, 6 HardSwish ``[alpha, beta]``).  Which activations each layer type takes follows
ncnnoptimize: Deconvolution and DeconvolutionDepthWise take ReLU, Clip and Sigmoid only.
The fused layer computes exactly what the two layers did.
"""

from __future__ import annotations

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.passes import LEVEL_EXACT, Pass
from ncnnc.core.patterns import Match, Op, PatternPass, chain, fuse_into
from ncnnc.plugins.passes.common import PASS_NAMES, WEIGHTED, no_activation, single_output

ALL_ACTIVATIONS = ("ReLU", "Clip", "Sigmoid", "Mish", "HardSwish")
ACTIVATIONS = {"Convolution": ALL_ACTIVATIONS, "ConvolutionDepthWise": ALL_ACTIVATIONS,
               "Deconvolution": ("ReLU", "Clip", "Sigmoid"), "DeconvolutionDepthWise": ("ReLU", "Clip", "Sigmoid"),
               "InnerProduct": ALL_ACTIVATIONS}
"""The activation layer types ncnnoptimize fuses into each weighted layer type."""

ORDERS = {"Convolution": 260, "ConvolutionDepthWise": 270, "Deconvolution": 280, "DeconvolutionDepthWise": 290,
          "InnerProduct": 300}


def activation_params(act: Layer) -> tuple[int, list[float]]:
    """ncnn's ``(activation_type, activation_params)`` for an activation layer."""
    if act.type == "ReLU":
        slope = float(act.p("slope"))
        return (1, []) if slope == 0.0 else (2, [slope])
    if act.type == "Clip":
        return 3, [float(act.p("min")), float(act.p("max"))]
    if act.type == "Sigmoid":
        return 4, []
    if act.type == "Mish":
        return 5, []
    if act.type == "HardSwish":
        return 6, [float(act.p("alpha")), float(act.p("beta"))]
    raise ValueError(f"{act.type} is not a fusable activation")


def _fuse(graph: Graph, m: Match) -> str:
    layer, act = m["layer"], m["act"]
    kind, params = activation_params(act)
    layer.params["activation_type"] = kind
    if params:
        layer.params["activation_params"] = params
    fuse_into(graph, layer, act)
    return f"{layer.name} + {act.name} -> {layer.name} (9={kind})"


def activation_pass(layer_type: str) -> Pass:
    """``fuse_<type>_activation`` for one weighted layer type."""
    return PatternPass(
        f"fuse_{PASS_NAMES[layer_type]}_activation",
        chain(layer=Op(layer_type, where=lambda x: single_output(x) and no_activation(x)),
              act=Op(ACTIVATIONS[layer_type], where=single_output)),
        _fuse, f"fuse {', '.join(ACTIVATIONS[layer_type])} into the {layer_type} before it",
        level=LEVEL_EXACT, order=ORDERS[layer_type])


@hookimpl
def ncnnc_passes() -> list[Pass]:
    """Activation fusion for every weighted layer type."""
    return [activation_pass(t) for t in WEIGHTED]
