"""Constant folding into weights: BatchNorm, Scale, per-channel Mul/Add, Dropout scale, scalar BinaryOps."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Graph
from ncnnc.core.shapes import infer_shapes

CIN, H, W = 4, 6, 7


def rnd(seed: int, *shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def weighted(b: GraphBuilder, ltype: str, x: str, cin: int, seed: int, bias: bool = True, act: int = 0,
             name: str | None = None, n: int = 5) -> str:
    """Append one weighted layer with random weights; returns its output blob."""
    if ltype == "Convolution":
        params, count = {0: n, 1: 3, 4: 1, 6: n * cin * 9}, n * cin * 9
    elif ltype == "ConvolutionDepthWise":
        n = cin
        params, count = {0: n, 1: 3, 4: 1, 6: n * 9, 7: n}, n * 9
    elif ltype == "Deconvolution":
        params, count = {0: n, 1: 3, 3: 2, 4: 1, 6: n * cin * 9}, n * cin * 9
    elif ltype == "DeconvolutionDepthWise":
        n = cin
        params, count = {0: n, 1: 3, 6: n * 9, 7: n}, n * 9
    else:
        params, count = {0: n, 2: n * cin * H * W}, n * cin * H * W
    bias_id = 1 if ltype == "InnerProduct" else 5
    params[bias_id] = int(bias)
    if act:
        params[9] = act
    weights = {"weight": rnd(seed, count)}
    if bias:
        weights["bias"] = rnd(seed + 1, n)
    return b.layer(ltype, [x], params, weights, name=name)


def channels(ltype: str, cin: int = CIN, n: int = 5) -> int:
    return cin if "DepthWise" in ltype else n


def batchnorm(b: GraphBuilder, x: str, c: int, seed: int, name: str | None = None) -> str:
    return b.layer("BatchNorm", [x], {0: c, 1: 1e-5},
                   {"slope": rnd(seed, c, low=0.5, high=2), "mean": rnd(seed + 1, c),
                    "var": rnd(seed + 2, c, low=0.1, high=3), "bias": rnd(seed + 3, c)}, name=name)


def scale(b: GraphBuilder, x: str, c: int, seed: int, bias: bool = True) -> str:
    weights = {"scale": rnd(seed, c, low=0.5, high=2)}
    if bias:
        weights["bias"] = rnd(seed + 1, c)
    return b.layer("Scale", [x], {0: c, 1: int(bias)}, weights)


TYPES = ["Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise", "InnerProduct"]
PASS = {"Convolution": "convolution", "ConvolutionDepthWise": "convolutiondepthwise",
        "Deconvolution": "deconvolution", "DeconvolutionDepthWise": "deconvolutiondepthwise",
        "InnerProduct": "innerproduct"}


def layer_then_bn(ltype: str, bias: bool = True, act: int = 0) -> Graph:
    b = GraphBuilder()
    x = weighted(b, ltype, b.input("data", (CIN, H, W)), CIN, 1, bias=bias, act=act, name="layer")
    batchnorm(b, x, channels(ltype), 10, name="bn")
    return b.build()


@pytest.mark.parametrize("ltype", TYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_batchnorm_folds(ltype, bias, optimized, types):
    after, report = optimized(layer_then_bn(ltype, bias), only=[f"fuse_{PASS[ltype]}_batchnorm"])
    assert types(after) == {"Input": 1, ltype: 1}
    layer = after.layer("layer")
    assert layer.p("bias_term") == 1 and layer.outputs == ["bn"]
    assert report.passes.counts() == {f"fuse_{PASS[ltype]}_batchnorm": 1}


@pytest.mark.parametrize("ltype", TYPES)
def test_batchnorm_after_fused_activation_left_alone(ltype, optimized, types):
    after, report = optimized(layer_then_bn(ltype, act=1), only=[f"fuse_{PASS[ltype]}_batchnorm"])
    assert types(after)["BatchNorm"] == 1 and not report.passes.changes


def test_batchnorm_after_split_output_left_alone(optimized, types):
    b = GraphBuilder()
    x = weighted(b, "Convolution", b.input("data", (CIN, H, W)), CIN, 1)
    s0, s1 = b.layer("Split", [x], outputs=2)
    batchnorm(b, s0, 5, 3)
    b.layer("ReLU", [s1])
    after, report = optimized(b.build(), only=["fuse_convolution_batchnorm"])
    assert types(after)["BatchNorm"] == 1 and not report.passes.changes


@pytest.mark.parametrize("bias", [True, False])
def test_batchnorm_scale(bias, optimized, types):
    b = GraphBuilder()
    x = b.layer("ReLU", [b.input("data", (CIN, H, W))])
    scale(b, batchnorm(b, x, CIN, 2), CIN, 7, bias=bias)
    after, _ = optimized(b.build(), only=["fuse_batchnorm_scale"])
    assert types(after) == {"Input": 1, "ReLU": 1, "BatchNorm": 1}


def test_scale_with_two_inputs_left_alone(optimized, types):
    b = GraphBuilder()
    x = b.input("data", (CIN, H, W))
    s0, s1 = b.layer("Split", [x], outputs=2)
    bn = batchnorm(b, s0, CIN, 2)
    gamma = b.layer("Pooling", [s1], {0: 1, 4: 1})
    b.layer("Scale", [bn, gamma], {0: -233})
    after, report = optimized(b.build(), only=["fuse_batchnorm_scale"])
    assert types(after)["Scale"] == 1 and not report.passes.changes


def test_every_batchnorm_and_scale_folds_away(optimized, types):
    """Conv, ConvDW, Deconv, DeconvDW and InnerProduct each followed by BatchNorm+Scale+ReLU."""
    b = GraphBuilder()
    x, cin = b.input("data", (CIN, H, W)), CIN
    for i, ltype in enumerate(TYPES[:4]):
        x = weighted(b, ltype, x, cin, 10 * i, bias=i % 2 == 0, n=CIN)
        cin = channels(ltype, cin, CIN)
        x = b.layer("ReLU", [scale(b, batchnorm(b, x, cin, 10 * i + 3), cin, 10 * i + 7)])
    x = b.layer("Pooling", [x], {0: 1, 1: 2, 2: 2})
    size = int(np.prod(infer_shapes(b.build())[x]))
    x = b.layer("InnerProduct", [x], {0: 6, 1: 1, 2: 6 * size}, {"weight": rnd(5, 6 * size) / 8, "bias": rnd(6, 6)})
    scale(b, batchnorm(b, x, 6, 50), 6, 57)
    graph = b.build()
    assert graph.shapes == {}
    after, _ = optimized(graph)
    found = types(after)
    assert found["BatchNorm"] == 0 and found["Scale"] == 0 and found["ReLU"] == 0
    assert len(after) == 7


# -- per-channel constants --------------------------------------------------------------------
def layer_then_constant(ltype: str, op_type: int, md_shape: tuple[int, ...], swap: bool = False,
                        bias: bool = True) -> Graph:
    b = GraphBuilder()
    x = weighted(b, ltype, b.input("data", (CIN, H, W)), CIN, 1, bias=bias, name="layer")
    keys = ("c", "h", "w")[-len(md_shape):] if len(md_shape) <= 3 else ()
    md = b.layer("MemoryData", [], {k: v for k, v in zip(keys, md_shape)}, {"data": rnd(3, *md_shape, low=0.5, high=2)})
    b.layer("BinaryOp", [md, x] if swap else [x, md], {0: op_type})
    return b.build()


CONSTANT_CASES = [("Convolution", 2), ("Convolution", 0), ("ConvolutionDepthWise", 2), ("ConvolutionDepthWise", 0),
                  ("Deconvolution", 2), ("Deconvolution", 0), ("InnerProduct", 0)]


@pytest.mark.parametrize(("ltype", "op_type"), CONSTANT_CASES)
@pytest.mark.parametrize("swap", [False, True])
def test_per_channel_constant_folds(ltype, op_type, swap, optimized, types):
    name = f"fuse_{PASS[ltype]}_{'mul' if op_type == 2 else 'add'}"
    c = channels(ltype)
    after, report = optimized(layer_then_constant(ltype, op_type, (c,), swap),
                              only=[name, "eliminate_orphaned_memorydata"])
    assert types(after) == {"Input": 1, ltype: 1}
    assert report.passes.counts() == {name: 1, "eliminate_orphaned_memorydata": 1}


@pytest.mark.parametrize("op_type", [0, 2])
def test_channel_constant_1x1xc_and_no_bias(op_type, optimized, types):
    name = "fuse_convolution_mul" if op_type == 2 else "fuse_convolution_add"
    after, _ = optimized(layer_then_constant("Convolution", op_type, (5, 1, 1), bias=False),
                         only=[name, "eliminate_orphaned_memorydata"])
    assert types(after) == {"Input": 1, "Convolution": 1}


@pytest.mark.parametrize(("md_shape", "op_type"), [((5, H, W), 0), ((W,), 2), ((5,), 1), ((5,), 3)])
def test_other_constants_left_alone(md_shape, op_type, optimized, types):
    """A full-size constant, a constant along w, subtraction and division are not folded."""
    after, report = optimized(layer_then_constant("Convolution", op_type, md_shape),
                              only=["fuse_convolution_mul", "fuse_convolution_add"])
    assert types(after)["BinaryOp"] == 1 and not report.passes.changes


def test_constant_fold_after_activation_left_alone(optimized, types):
    b = GraphBuilder()
    x = weighted(b, "Convolution", b.input("data", (CIN, H, W)), CIN, 1, act=1)
    md = b.layer("MemoryData", [], {"w": 5}, {"data": rnd(3, 5)})
    b.layer("BinaryOp", [x, md], {0: 2})
    after, report = optimized(b.build(), only=["fuse_convolution_mul"])
    assert types(after)["BinaryOp"] == 1 and not report.passes.changes


# -- InnerProduct + Dropout -------------------------------------------------------------------
@pytest.mark.parametrize("drop_scale", [1.0, 0.5])
def test_innerproduct_dropout(drop_scale, optimized, types):
    b = GraphBuilder()
    x = weighted(b, "InnerProduct", b.input("data", (CIN, H, W)), CIN, 1)
    b.layer("Dropout", [x], {0: drop_scale})
    after, _ = optimized(b.build(), only=["fuse_innerproduct_dropout"])
    assert types(after) == {"Input": 1, "InnerProduct": 1}


def test_scaled_dropout_after_convolution_left_alone(optimized, types):
    b = GraphBuilder()
    x = weighted(b, "Convolution", b.input("data", (CIN, H, W)), CIN, 1)
    b.layer("Dropout", [x], {0: 0.5})
    after, report = optimized(b.build(), only=["fuse_innerproduct_dropout", "eliminate_dropout"])
    assert types(after)["Dropout"] == 1 and not report.passes.changes


def test_scaled_dropout_after_activation_left_alone(optimized, types):
    b = GraphBuilder()
    x = weighted(b, "InnerProduct", b.input("data", (CIN, H, W)), CIN, 1, act=4)
    b.layer("Dropout", [x], {0: 0.5})
    after, report = optimized(b.build(), only=["fuse_innerproduct_dropout"])
    assert types(after)["Dropout"] == 1 and not report.passes.changes


# -- scalar MemoryData operands ---------------------------------------------------------------
@pytest.mark.parametrize("op_type", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("constant_first", [False, True])
@pytest.mark.parametrize("through_split", [False, True])
def test_memorydata_binaryop(op_type, constant_first, through_split, optimized, types):
    b = GraphBuilder()
    x = b.input("data", (CIN, H, W))
    md = b.layer("MemoryData", [], {"w": 1}, {"data": np.array([1.75], np.float32)})
    if through_split:
        md, other = b.layer("Split", [md], outputs=2)
        b.layer("BinaryOp", [x, other], {0: 0}, name="keep")
    b.layer("BinaryOp", [md, x] if constant_first else [x, md], {0: op_type}, name="op")
    after, _ = optimized(b.build(), only=["fuse_memorydata_binaryop", "eliminate_split",
                                          "eliminate_orphaned_memorydata"])
    op = after.layer("op")
    assert op.inputs == ["data"] and op.p("with_scalar") == 1 and op.p("b") == 1.75
    assert types(after)["MemoryData"] == 0 and types(after)["Split"] == 0


@pytest.mark.parametrize(("value", "op_type", "first"), [([1.0, 2.0], 0, False), ([2.0], 6, True)])
def test_memorydata_binaryop_left_alone(value, op_type, first, optimized, types):
    """A two-value constant, and pow with the constant as base, stay as they are."""
    b = GraphBuilder()
    x = b.layer("Sigmoid", [b.input("data", (CIN, H, len(value)))])
    md = b.layer("MemoryData", [], {"w": len(value)}, {"data": np.array(value, np.float32)})
    b.layer("BinaryOp", [md, x] if first else [x, md], {0: op_type})
    after, report = optimized(b.build(), only=["fuse_memorydata_binaryop"])
    assert types(after)["MemoryData"] == 1 and not report.passes.changes


# -- BinaryOp -> Eltwise ------------------------------------------------------------------------
@pytest.mark.parametrize("scaled", ["both", "left", "right"])
def test_binaryop_eltwise(scaled, optimized, types):
    b = GraphBuilder()
    x0, x1 = b.layer("Split", [b.input("data", (CIN, H, W))], outputs=2)
    y1 = b.layer("TanH", [x1])
    left = b.layer("BinaryOp", [x0], {0: 2, 1: 1, 2: 0.5}) if scaled in ("both", "left") else x0
    right = b.layer("BinaryOp", [y1], {0: 2, 1: 1, 2: -3.0}) if scaled in ("both", "right") else y1
    b.layer("BinaryOp", [left, right], {0: 0}, name="add")
    after, _ = optimized(b.build(), only=["fuse_binaryop_eltwise"])
    eltwise = after.layer("add")
    assert eltwise.type == "Eltwise" and types(after)["BinaryOp"] == 0
    assert eltwise.p("coeffs") == [0.5 if scaled != "right" else 1.0, -3.0 if scaled != "left" else 1.0]


def test_broadcasting_add_left_alone(optimized, types):
    b = GraphBuilder()
    x = b.input("data", (CIN, H, W))
    md = b.layer("MemoryData", [], {"w": W}, {"data": rnd(1, W)})
    scaled = b.layer("BinaryOp", [md], {0: 2, 1: 1, 2: 0.5})
    b.layer("BinaryOp", [x, scaled], {0: 0})
    after, report = optimized(b.build(), only=["fuse_binaryop_eltwise"])
    assert types(after)["BinaryOp"] == 2 and not report.passes.changes
