"""Replacements: Reduction -> global pooling, PReLU -> leaky ReLU, 1x1 Convolution -> InnerProduct."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.core.builder import GraphBuilder

C, H, W = 4, 5, 6
NO_NUMPY_REDUCTION = NO_NUMPY_CONV1D = False
"""The numpy backend has no Reduction op and no Convolution of a 1-D blob (ncnn's deprecated
compatibility path, which these passes remove): such models are checked in the real runtime only."""


def rnd(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def mean(axes: list[int], keepdims: int = 0, operation: int = 3) -> dict:
    return {0: operation, 1: 0, 3: axes, 4: keepdims, 5: 1}


@pytest.mark.parametrize("chain", [[[1, 2]], [[-2, -1]], [[1], [1]], [[2], [1]]])
def test_spatial_mean_becomes_global_pooling(chain, optimized, types):
    b = GraphBuilder()
    x = b.layer("TanH", [b.input("data", (C, H, W))])
    for i, axes in enumerate(chain):
        x = b.layer("Reduction", [x], mean(axes), name="mean" if i == len(chain) - 1 else None)
    b.layer("Softmax", [x])
    after, _ = optimized(b.build(), only=["replace_reduction_with_global_pooling"], numpy=NO_NUMPY_REDUCTION)
    assert types(after) == {"Input": 1, "TanH": 1, "Pooling": 1, "Softmax": 1}
    pooling = after.layer("mean")
    assert pooling.p("pooling_type") == 1 and pooling.p("global_pooling") == 1


@pytest.mark.parametrize(("chain", "keepdims", "operation"), [
    ([[1, 2]], 1, 3), ([[0, 1]], 0, 3), ([[1, 2]], 0, 4), ([[2], [0]], 0, 3), ([[1], [1]], 1, 3)])
def test_other_reductions_left_alone(chain, keepdims, operation, optimized, types):
    b = GraphBuilder()
    x = b.input("data", (C, H, W))
    for axes in chain:
        x = b.layer("Reduction", [x], mean(axes, keepdims, operation))
    after, report = optimized(b.build(), only=["replace_reduction_with_global_pooling"], numpy=NO_NUMPY_REDUCTION)
    assert types(after)["Reduction"] == len(chain) and not report.passes.changes


@pytest.mark.parametrize(("num_slope", "replaced"), [(1, True), (C, False)])
def test_prelu(num_slope, replaced, optimized, types):
    b = GraphBuilder()
    b.layer("PReLU", [b.input("data", (C, H, W))], {0: num_slope}, {"slope": rnd(1, num_slope) / 4}, name="prelu")
    after, _ = optimized(b.build(), only=["replace_prelu_with_leaky_relu"])
    assert after.layer("prelu").type == ("ReLU" if replaced else "PReLU")


def pointwise(b: GraphBuilder, x: str, cin: int, n: int = 6, kernel: int = 1, pad: int = 0, act: int = 0) -> str:
    params = {0: n, 1: kernel, 4: pad, 5: 1, 6: n * cin * kernel * kernel}
    if act:
        params[9] = act
    return b.layer("Convolution", [x], params,
                   {"weight": rnd(2, n * cin * kernel * kernel), "bias": rnd(3, n)}, name="conv")


@pytest.mark.parametrize("act", [0, 1])
def test_convolution_after_global_pooling(act, optimized, types):
    b = GraphBuilder()
    x = b.layer("Pooling", [b.input("data", (C, H, W))], {0: 1, 4: 1})
    b.layer("Softmax", [pointwise(b, x, C, act=act)])
    after, _ = optimized(b.build(), only=["replace_convolution_with_innerproduct_after_global_pooling"],
                         numpy=NO_NUMPY_CONV1D)
    ip = after.layer("conv")
    assert ip.type == "InnerProduct" and ip.p("num_output") == 6 and ip.p("activation_type") == act


def test_convolution_after_innerproduct(optimized, types):
    b = GraphBuilder()
    x = b.layer("InnerProduct", [b.input("data", (C, H, W))], {0: 5, 1: 1, 2: 5 * C * H * W},
                {"weight": rnd(4, 5 * C * H * W), "bias": rnd(5, 5)})
    x = pointwise(b, x, 5)
    b.layer("Convolution", [x], {0: 3, 1: 1, 6: 18}, {"weight": rnd(6, 18)}, name="conv2")
    after, report = optimized(b.build(), only=["replace_convolution_with_innerproduct_after_innerproduct"],
                              numpy=NO_NUMPY_CONV1D)
    assert types(after) == {"Input": 1, "InnerProduct": 3}
    assert report.passes.counts() == {"replace_convolution_with_innerproduct_after_innerproduct": 2}


@pytest.mark.parametrize("case", ["1x1 after TanH after global pooling", "1x1 after local pooling",
                                  "after 2-D innerproduct"])
def test_convolution_left_alone(case, optimized, types):
    b = GraphBuilder()
    if case == "after 2-D innerproduct":
        x = b.layer("InnerProduct", [b.input("data", (H, W))], {0: 5, 2: 5 * W}, {"weight": rnd(4, 5 * W)})
        x = pointwise(b, x, 1)
    elif case == "1x1 after local pooling":
        x = pointwise(b, b.layer("Pooling", [b.input("data", (C, H, W))], {0: 1, 1: 2, 2: 2}), C)
    else:
        x = b.layer("TanH", [b.layer("Pooling", [b.input("data", (C, H, W))], {0: 1, 4: 1})])
        x = pointwise(b, x, C)
    b.layer("TanH", [x])
    after, report = optimized(b.build(), only=["replace_convolution_with_innerproduct_after_global_pooling",
                                               "replace_convolution_with_innerproduct_after_innerproduct"],
                              numpy=case == "1x1 after local pooling")
    assert after.layer("conv").type == "Convolution" and not report.passes.changes
