"""Activation fusion into Convolution, ConvolutionDepthWise, Deconvolution(DepthWise) and InnerProduct."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Graph

CIN, H, W = 3, 5, 6
LAYERS = {
    "Convolution": ({0: 4, 1: 3, 4: 1, 5: 1, 6: 4 * CIN * 9}, 4 * CIN * 9, 4),
    "ConvolutionDepthWise": ({0: CIN, 1: 3, 5: 1, 6: CIN * 9, 7: CIN}, CIN * 9, CIN),
    "Deconvolution": ({0: 4, 1: 2, 3: 2, 5: 1, 6: 4 * CIN * 4}, 4 * CIN * 4, 4),
    "DeconvolutionDepthWise": ({0: CIN, 1: 3, 5: 1, 6: CIN * 9, 7: CIN}, CIN * 9, CIN),
    "InnerProduct": ({0: 7, 1: 1, 2: 7 * CIN * H * W}, 7 * CIN * H * W, 7),
}
PASS = {"Convolution": "convolution", "ConvolutionDepthWise": "convolutiondepthwise",
        "Deconvolution": "deconvolution", "DeconvolutionDepthWise": "deconvolutiondepthwise",
        "InnerProduct": "innerproduct"}
ACTIVATIONS = {  # layer type and params -> expected (activation_type, activation_params)
    "relu": ("ReLU", {}, 1, []),
    "leaky": ("ReLU", {0: 0.125}, 2, [0.125]),
    "clip": ("Clip", {0: -0.25, 1: 0.5}, 3, [-0.25, 0.5]),
    "sigmoid": ("Sigmoid", {}, 4, []),
    "mish": ("Mish", {}, 5, []),
    "hardswish": ("HardSwish", {0: 0.25, 1: 0.375}, 6, [0.25, 0.375]),
}
TAKES = {t: list(ACTIVATIONS) for t in LAYERS}
TAKES["Deconvolution"] = TAKES["DeconvolutionDepthWise"] = ["relu", "leaky", "clip", "sigmoid"]


def model(ltype: str, act: str, split: bool = False, fused: int = 0) -> Graph:
    params, count, n = LAYERS[ltype]
    rng = np.random.default_rng(len(ltype) + len(act))
    b = GraphBuilder()
    params = {**params, 9: fused} if fused else params
    x = b.layer(ltype, [b.input("data", (CIN, H, W))], params,
                {"weight": rng.uniform(-1, 1, count), "bias": rng.uniform(-1, 1, n)}, name="layer")
    if split:
        x, other = b.layer("Split", [x], outputs=2)
        b.layer("TanH", [other])
    atype, aparams, _, _ = ACTIVATIONS[act]
    b.layer(atype, [x], aparams, name="act")
    return b.build()


CASES = [(t, a) for t in LAYERS for a in TAKES[t]]


@pytest.mark.parametrize(("ltype", "act"), CASES)
def test_activation_fuses(ltype, act, optimized, types):
    after, _report = optimized(model(ltype, act), only=[f"fuse_{PASS[ltype]}_activation"])
    assert types(after) == {"Input": 1, ltype: 1}
    layer = after.layer("layer")
    _, _, kind, params = ACTIVATIONS[act]
    assert layer.p("activation_type") == kind and layer.p("activation_params") == params
    assert layer.outputs == ["act"]


@pytest.mark.parametrize("ltype", ["Deconvolution", "DeconvolutionDepthWise"])
@pytest.mark.parametrize("act", ["mish", "hardswish"])
def test_activation_ncnn_does_not_fuse_into_deconvolution(ltype, act, optimized, types):
    after, report = optimized(model(ltype, act), only=[f"fuse_{PASS[ltype]}_activation"])
    assert types(after)[ACTIVATIONS[act][0]] == 1 and not report.passes.changes


@pytest.mark.parametrize("ltype", list(LAYERS))
def test_activation_after_split_or_second_activation_left_alone(ltype, optimized, types):
    after, report = optimized(model(ltype, "relu", split=True), only=[f"fuse_{PASS[ltype]}_activation"])
    assert types(after)["ReLU"] == 1 and not report.passes.changes
    after, report = optimized(model(ltype, "sigmoid", fused=1), only=[f"fuse_{PASS[ltype]}_activation"])
    assert types(after)["Sigmoid"] == 1 and not report.passes.changes
