"""Fold BatchNorm (and Scale after BatchNorm) into the layer before it, as ncnnoptimize does.

BatchNorm computes ``(x - mean) / sqrt(var + eps) * slope + bias`` per channel, i.e. ``x * b + a``
with ``b = slope / sqrt(var + eps)`` and ``a = bias - slope * mean / sqrt(var + eps)``; a
Convolution-like layer before it absorbs that into its weights (scaled by ``b`` per output
channel) and bias (``bias * b + a``).  A Scale after a BatchNorm folds into the BatchNorm's slope
and bias.  The arithmetic is float32 in ncnn's order.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.passes import LEVEL_FOLD, Pass
from ncnnc.core.patterns import Match, Op, PatternPass, chain, fuse_into, set_weight
from ncnnc.plugins.passes.common import PASS_NAMES, WEIGHTED, foldable, scale_and_shift, shape, single_output

ORDERS = {"Convolution": 110, "ConvolutionDepthWise": 140, "Deconvolution": 170, "DeconvolutionDepthWise": 200,
          "InnerProduct": 210}
"""Position of each ``fuse_X_batchnorm`` pass, following ncnnoptimize's sequence."""


def batchnorm_affine(bn: Layer) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` such that the BatchNorm computes ``x * b + a``."""
    slope, mean, var, bias = (bn.weight(n) for n in ("slope", "mean", "var", "bias"))
    sqrt_var = np.sqrt(var + np.float32(bn.p("eps")))
    return slope / sqrt_var, bias - slope * mean / sqrt_var


def _fuse_batchnorm_scale(graph: Graph, m: Match) -> str:
    bn, scale = m["bn"], m["scale"]
    s = scale.weight("scale")
    set_weight(bn, "slope", bn.weight("slope") * s)
    bias = bn.weight("bias") * s
    set_weight(bn, "bias", bias + scale.weight("bias") if scale.p("bias_term") else bias)
    fuse_into(graph, bn, scale)
    return f"{bn.name} + {scale.name} -> {bn.name}"


fuse_batchnorm_scale = PatternPass(
    "fuse_batchnorm_scale",
    chain(bn=Op("BatchNorm", where=single_output),
          scale=Op("Scale", where=lambda s: s.p("scale_data_size") != -233)),
    _fuse_batchnorm_scale, "fold a Scale into the BatchNorm before it", level=LEVEL_FOLD, order=100,
    where=lambda g, m: m["scale"].p("scale_data_size") == m["bn"].p("channels"))


def _channels_match(graph: Graph, m: Match) -> bool:
    layer, bn = m["layer"], m["bn"]
    if bn.p("channels") != layer.p("num_output"):
        return False
    if layer.type == "InnerProduct":
        # BatchNorm on a 2-D blob normalizes rows, not InnerProduct's output channels
        out = shape(graph, layer.outputs[0])
        return out is not None and len(out) == 1
    return True


def _fold(graph: Graph, m: Match) -> str:
    layer, bn = m["layer"], m["bn"]
    b, a = batchnorm_affine(bn)
    scale_and_shift(layer, b, a)
    fuse_into(graph, layer, bn)
    return f"{layer.name} + {bn.name} -> {layer.name}"


def fold_batchnorm_pass(layer_type: str) -> Pass:
    """``fuse_<type>_batchnorm``: fold a BatchNorm into the ``layer_type`` layer before it."""
    return PatternPass(
        f"fuse_{PASS_NAMES[layer_type]}_batchnorm",
        chain(layer=Op(layer_type, where=foldable), bn=Op("BatchNorm")),
        _fold, f"fold a BatchNorm into the {layer_type} before it", where=_channels_match,
        level=LEVEL_FOLD, order=ORDERS[layer_type], needs_shapes=layer_type == "InnerProduct")


@hookimpl
def ncnnc_passes() -> list[Pass]:
    """BatchNorm+Scale and X+BatchNorm folding."""
    return [fuse_batchnorm_scale, *(fold_batchnorm_pass(t) for t in WEIGHTED)]
