"""Element-wise layers compiled by the LLVM backend against the numpy simulation: activations,
BinaryOp (every broadcasting form of ``arith_ops.ncnn_broadcast``, with_scalar), Eltwise; on 1-D/2-D/3-D
blobs, strided (in-place Concat) views and int8 inputs.

Bit-identical except where a transcendental function differs from numpy's (``TRANSCENDENTAL``, see
``kernels/elementwise.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncnnc.backends.llvm.lower import lower
from ncnnc.backends.llvm.targets import resolve
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Graph

from .harness import assert_matches, run_jit, simulate

TRANSCENDENTAL = {"rtol": 1e-6, "atol": 1e-7}
"""libm's expf/tanhf/powf against numpy's SIMD exp and SVML tanh/power: a few ulp."""

SOME = settings(max_examples=30, deadline=None, derandomize=True)

ACTIVATIONS = [
    ("ReLU", {}, False), ("ReLU", {0: 0.1}, False), ("Clip", {0: -0.3, 1: 0.45}, False), ("Clip", {}, False),
    ("Sigmoid", {}, True), ("Swish", {}, True), ("TanH", {}, True), ("HardSigmoid", {}, False),
    ("HardSigmoid", {0: 0.3, 1: 0.4}, False), ("HardSwish", {}, False), ("HardSwish", {0: 1 / 6, 1: 0.5}, False),
]


def _data(seed: int, shape: tuple[int, ...], scale: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, shape).astype(np.float32)


def _check(graph: Graph, inputs: dict[str, np.ndarray], loose: bool = False) -> None:
    assert_matches(run_jit(graph, inputs), simulate(graph, inputs), **(TRANSCENDENTAL if loose else {}))


shapes = st.sampled_from([(5, 3, 7), (17, 2, 3), (1, 4, 5), (33, 1, 1), (19,), (4, 9), (1,), (3, 1, 5)])


@SOME
@given(act=st.integers(0, len(ACTIVATIONS) - 1), shape=shapes, seed=st.integers(0, 99))
def test_activation(act, shape, seed):
    ltype, params, loose = ACTIVATIONS[act]
    b = GraphBuilder()
    b.layer(ltype, [b.input("data", shape)], params)
    _check(b.build(), {"data": _data(seed, shape)}, loose)


def test_activation_nan_and_inf():
    data = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -3.5, 2.5, 100.0, -100.0, 7.0], np.float32)
    for ltype, params, loose in ACTIVATIONS:
        b = GraphBuilder()
        b.layer(ltype, [b.input("data", (11,))], params)
        _check(b.build(), {"data": data}, loose)


BROADCASTS = [
    ((5, 3, 7), (5, 3, 7)), ((5, 3, 7), (5,)), ((5, 3, 7), (5, 1, 1)), ((5, 3, 7), (7,)), ((5, 3, 7), (1,)),
    ((5, 3, 7), (1, 3, 7)), ((5, 3, 7), (5, 3, 1)), ((5, 3, 7), (5, 1, 7)), ((4, 9), (4,)), ((4, 9), (9,)),
    ((4, 9), (4, 1)), ((4, 9), (1, 9)), ((19,), (19,)), ((19,), (1,)), ((17, 2, 3), (17,)), ((3, 4, 6), (3, 4)),
]


@SOME
@given(op=st.integers(0, 9), pair=st.sampled_from(BROADCASTS), swap=st.booleans(), seed=st.integers(0, 99))
def test_binaryop_broadcast(op, pair, swap, seed):
    sa, sb = pair[::-1] if swap else pair
    b = GraphBuilder()
    b.layer("BinaryOp", [b.input("a", sa), b.input("b", sb)], {0: op})
    positive = op in (6, 9)  # pow: keep the base positive so most values are finite
    inputs = {"a": _data(seed, sa), "b": _data(seed + 1, sb)}
    if positive:
        inputs = {k: np.abs(v) + 0.25 for k, v in inputs.items()}
    _check(b.build(), inputs, loose=positive)


@pytest.mark.parametrize("op", range(10))
def test_binaryop_scalar(op):
    b = GraphBuilder()
    b.layer("BinaryOp", [b.input("a", (6, 5, 3))], {0: op, 1: 1, 2: 1.7})
    data = np.abs(_data(op, (6, 5, 3))) + 0.1
    data[0, 0, :] = [0.0, np.nan, np.inf]
    _check(b.build(), {"a": data}, loose=op in (6, 9))


def test_binaryop_max_min_nan_from_either_side():
    a = np.array([np.nan, 1.0, 2.0, np.nan, -1.0, 0.0], np.float32)
    c = np.array([1.0, np.nan, 3.0, np.nan, -2.0, -0.0], np.float32)
    for op in (4, 5):
        b = GraphBuilder()
        b.layer("BinaryOp", [b.input("a", (6,)), b.input("b", (6,))], {0: op})
        _check(b.build(), {"a": a, "b": c})


@SOME
@given(op=st.integers(0, 2), n=st.integers(2, 4), coeffs=st.booleans(), shape=shapes, seed=st.integers(0, 99))
def test_eltwise(op, n, coeffs, shape, seed):
    b = GraphBuilder()
    xs = [b.input(f"x{i}", shape) for i in range(n)]
    params = {0: op}
    if coeffs and op == 1:
        params[1] = [0.5, -1.25, 2.0, 0.3][:n]
    b.layer("Eltwise", xs, params)
    _check(b.build(), {f"x{i}": _data(seed + i, shape) for i in range(n)})


def test_eltwise_fewer_coefficients_than_inputs():
    b = GraphBuilder()
    xs = [b.input(f"x{i}", (3, 4, 5)) for i in range(3)]
    b.layer("Eltwise", xs, {0: 1, 1: [2.0, -0.5]})
    _check(b.build(), {f"x{i}": _data(i, (3, 4, 5)) for i in range(3)})


def _strided_graph() -> Graph:
    """Element-wise layers writing into in-place Concats and reading channel parts of them."""
    b = GraphBuilder()
    a, c = b.input("a", (3, 5, 7)), b.input("b", (5, 5, 7))
    ra, rb = b.layer("ReLU", [a], {0: 0.2}), b.layer("HardSwish", [c])
    b.layer("Concat", [ra, rb], name="cat")
    s = b.layer("Sigmoid", [ra])
    t = b.layer("Clip", [rb], {0: -0.1, 1: 0.5})
    b.layer("Concat", [s, t], name="cat2")
    add = b.layer("BinaryOp", [ra, ra], {0: 0})
    mul = b.layer("BinaryOp", [rb, b.input("v", (5,))], {0: 2})
    b.layer("Concat", [add, mul], name="cat3")
    e = b.layer("Eltwise", [ra, s, add], {0: 1, 1: [1.0, -2.0, 0.5]})
    b.layer("Concat", [e, b.layer("TanH", [rb])], name="cat4")
    return b.build()


def test_strided_views():
    graph = _strided_graph()
    program = lower(graph, resolve("host"))
    kinds = ("relu", "hardswish", "sigmoid", "clip", "binaryop", "eltwise", "tanh")
    steps = [s for s in program.steps if s.kind in kinds]
    assert any(v.dims == 3 and v.pixel_stride > v.shape[0] for s in steps for v in s.inputs)
    assert any(v.dims == 3 and v.pixel_stride > v.shape[0] for s in steps for v in s.outputs)
    inputs = {"a": _data(1, (3, 5, 7)), "b": _data(2, (5, 5, 7)), "v": _data(3, (5,))}
    _check(graph, inputs, loose=True)
    # the exact layers alone, bit for bit
    got, want = run_jit(graph, inputs), simulate(graph, inputs)
    assert_matches({"cat": got["cat"]}, {"cat": want["cat"]})


def test_int8_input():
    """int8 blobs (a Quantize layer's output) converted to float: ReLU, Clip, HardSwish, BinaryOp with
    a float blob and with a scalar.  (The simulation computes int8 + int8 in wrapping int8 and
    exp of int8 in float16, so those are not compared.)"""
    b = GraphBuilder()
    x = b.input("data", (6, 4, 5))
    q = b.layer("Quantize", [x], {"scale_data_size": 1}, {"scale": [30.0]})
    b.layer("ReLU", [q], name="relu")
    b.layer("ReLU", [q], {0: 0.1}, name="leaky")
    b.layer("Clip", [q], {0: -20.0, 1: 50.0}, name="clip")
    b.layer("HardSwish", [q], name="hswish")
    b.layer("BinaryOp", [q, x], {0: 1}, name="sub")
    b.layer("BinaryOp", [q], {0: 3, 1: 1, 2: 7.0}, name="div")
    graph = b.build()
    assert lower(graph, resolve("host")).steps[1].outputs[0].dtype == "i8"
    _check(graph, {"data": _data(4, (6, 4, 5), 1.5)})


def test_refusals():
    from ncnnc.core.errors import UnsupportedError

    b = GraphBuilder()
    b.layer("BinaryOp", [b.input("a", (3, 4))], {0: 12, 1: 1}, name="fmod")
    with pytest.raises(UnsupportedError, match="fmod"):
        lower(b.build(), resolve("host"))


@pytest.mark.parametrize("shape", [(3, 11, 13), (80, 3, 5), (7, 9), (12,)])
@pytest.mark.parametrize("bias", [True, False])
def test_scale_per_channel(shape, bias):
    """Scale (what ``--exact-input`` puts on the image): read from the channel-major model input, and from an
    intermediate blob; 3 channels unrolled, 80 through the per-channel table; 1-D and 2-D blobs."""
    rng = np.random.default_rng(len(shape) + bias)
    c = shape[0]
    weights = {"scale": rng.normal(0, 2, c)} | ({"bias": rng.normal(0, 2, c)} if bias else {})
    b = GraphBuilder()
    x = b.input("data", shape)
    b.layer("Scale", [x], {0: c, 1: int(bias)}, weights, name="direct")
    mid = b.layer("ReLU", [x], {0: 0.5})
    b.layer("Scale", [mid], {0: c, 1: int(bias)}, weights, name="after")
    _check(b.build(), {"data": _data(3, shape)})
