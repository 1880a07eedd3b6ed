"""Pooling compiled by the LLVM backend against the numpy simulation: windowed (every pad mode,
explicit pads, count_include_pad, strides, non-square kernels), global and adaptive, on 1-D/2-D/3-D
blobs, strided (in-place Concat) views and int8 inputs.

Windowed and global pooling and every maximum are bit-identical; adaptive average pooling sums in
another order than numpy's reduction (``AVG_ATOL``, see ``kernels/pool.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ncnnc.backends.llvm.lower import lower
from ncnnc.backends.llvm.targets import resolve
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Graph
from ncnnc.core.shapes import infer_shapes

from .harness import assert_matches, run_jit, simulate

AVG_ATOL = 1e-6
"""Adaptive averages: row-by-row vs numpy's reduction order, values in [-1, 1]."""

SOME = settings(max_examples=40, deadline=None, derandomize=True)


def _data(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _pool(shape: tuple[int, ...], params: dict) -> Graph:
    b = GraphBuilder()
    x = b.input("data", shape)
    b.layer("Pooling", [x], params, name="pool")
    return b.build()


def _check(graph: Graph, inputs: dict[str, np.ndarray], atol: float = 0.0) -> None:
    assert_matches(run_jit(graph, inputs), simulate(graph, inputs), atol=atol)


def _shape(dims: int, c: int, h: int, w: int) -> tuple[int, ...]:
    return {1: (w,), 2: (h, w), 3: (c, h, w)}[dims]


@SOME
@given(kind=st.integers(0, 1), mode=st.integers(0, 3), include_pad=st.integers(0, 1), kw=st.integers(1, 3),
       kh=st.integers(1, 3), sw=st.integers(1, 2), sh=st.integers(1, 2), pads=st.tuples(*[st.integers(0, 2)] * 4),
       c=st.sampled_from([1, 3, 5, 17, 21]), h=st.integers(2, 9), w=st.integers(2, 9),
       dims=st.sampled_from([3, 3, 3, 2, 1]), seed=st.integers(0, 99))
def test_windowed(kind, mode, include_pad, kw, kh, sw, sh, pads, c, h, w, dims, seed):
    if dims == 1:
        kh = 1
    left, right, top, bottom = pads
    shape = _shape(dims, c, h, w)
    params = {0: kind, 1: kw, 11: kh, 2: sw, 12: sh, 3: left, 14: right, 13: top, 15: bottom, 5: mode,
              6: include_pad}
    graph = _pool(shape, params)
    out = infer_shapes(graph)["pool"]
    assume(min(out) > 0)
    _check(graph, {"data": _data(seed, shape)})


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("kind", [0, 1])
def test_every_pad_mode_stride_2(kind, mode):
    """3x3 stride 2 on odd sizes and 19 channels (16 + 3 lanes), pads 1/0/2/1."""
    params = {0: kind, 1: 3, 2: 2, 3: 1, 14: 0, 13: 2, 15: 1, 5: mode}
    _check(_pool((19, 9, 7), params), {"data": _data(mode, (19, 9, 7))})


def test_nonsquare_kernel_and_count_include_pad():
    params = {0: 1, 1: 2, 11: 3, 2: 1, 12: 2, 3: 1, 14: 1, 13: 1, 15: 0, 6: 1}
    _check(_pool((6, 8, 5), params), {"data": _data(1, (6, 8, 5))})


def test_padding_region_with_infinities():
    """Values outside ncnn's counted region enter the average as ``x * 0`` (NaN for inf), and the
    maximum of a NaN window is NaN."""
    data = _data(2, (5, 6, 7))
    data[1, 0, 0] = np.inf
    data[2, 3, 3] = np.nan
    data[3, 5, 6] = -np.inf
    for params in ({0: 1, 1: 3, 2: 2, 5: 2, 3: 1, 13: 1}, {0: 1, 1: 2, 2: 2, 5: 3, 14: 1, 15: 1},
                   {0: 0, 1: 3, 2: 2, 5: 0, 3: 1}, {0: 1, 1: 3, 2: 1, 5: 1, 3: 1, 6: 1}):
        _check(_pool((5, 6, 7), params), {"data": data})


@SOME
@given(kind=st.integers(0, 1), c=st.sampled_from([1, 2, 7, 16, 33]), h=st.integers(1, 13), w=st.integers(1, 11),
       dims=st.sampled_from([3, 3, 2, 1]), seed=st.integers(0, 99))
def test_global(kind, c, h, w, dims, seed):
    shape = _shape(dims, c, h, w)
    _check(_pool(shape, {0: kind, 4: 1}), {"data": _data(seed, shape)})


@pytest.mark.parametrize("hw", [(7, 7), (13, 13), (17, 16), (56, 56), (1, 300)])
def test_global_average_pairwise_bit_identical(hw):
    """numpy's pairwise summation (8 partial sums, halves above 128 values) reproduced exactly."""
    shape = (20, *hw)
    data = np.random.default_rng(7).normal(0, 10, shape).astype(np.float32)
    _check(_pool(shape, {0: 1, 4: 1}), {"data": data})


@SOME
@given(kind=st.integers(0, 1), c=st.sampled_from([1, 3, 9, 17]), h=st.integers(1, 12), w=st.integers(1, 12),
       out_h=st.integers(1, 5), out_w=st.integers(1, 5), dims=st.sampled_from([3, 3, 2]), seed=st.integers(0, 99))
def test_adaptive(kind, c, h, w, out_h, out_w, dims, seed):
    shape = _shape(dims, c, h, w)
    graph = _pool(shape, {0: kind, 7: 1, 8: out_w, 18: out_h})
    _check(graph, {"data": _data(seed, shape)}, atol=AVG_ATOL if kind else 0.0)


def _strided_graph() -> Graph:
    """Pooling reading channel parts of an in-place Concat and writing into another one (3-D and 1-D)."""
    b = GraphBuilder()
    a, c = b.input("a", (3, 7, 9)), b.input("b", (5, 7, 9))
    ra, rb = b.layer("ReLU", [a]), b.layer("ReLU", [c], {0: 0.1})
    b.layer("Concat", [ra, rb], name="cat")
    p1 = b.layer("Pooling", [ra], {0: 1, 1: 3, 2: 2, 3: 1, 5: 0})
    p2 = b.layer("Pooling", [rb], {0: 0, 1: 2, 2: 2, 5: 2})
    b.layer("Concat", [p1, p2], name="cat_pool")
    g1 = b.layer("Pooling", [ra], {0: 0, 4: 1})
    g2 = b.layer("Pooling", [rb], {0: 1, 4: 1})
    b.layer("Concat", [g1, g2], name="cat_global")
    a1 = b.layer("Pooling", [rb], {0: 1, 7: 1, 8: 2, 18: 3})
    a2 = b.layer("Pooling", [rb], {0: 0, 7: 1, 8: 2, 18: 3})
    b.layer("Concat", [a1, a2], name="cat_adaptive")
    return b.build()


def test_strided_views():
    graph = _strided_graph()
    program = lower(graph, resolve("host"))
    pools = [s for s in program.steps if s.kind in ("pool", "gpool", "apool")]
    assert any(v.dims == 3 and v.pixel_stride > v.shape[0] for s in pools for v in s.inputs)
    assert any(v.dims == 3 and v.pixel_stride > v.shape[0] for s in pools for v in s.outputs)
    inputs = {"a": _data(3, (3, 7, 9)), "b": _data(4, (5, 7, 9))}
    _check(graph, inputs, atol=AVG_ATOL)


def test_int8_input():
    """A Quantize layer's int8 blob pooled (windowed average, global max and average).  The simulation
    cannot max-pool an int8 blob with windows (``np.maximum(..., -FLT_MAX, out=int8)`` raises)."""
    b = GraphBuilder()
    x = b.input("data", (6, 9, 7))
    q = b.layer("Quantize", [x], {"scale_data_size": 1}, {"scale": [40.0]})
    b.layer("Pooling", [q], {0: 1, 1: 3, 2: 2, 3: 1, 5: 0}, name="avg")
    b.layer("Pooling", [q], {0: 0, 4: 1}, name="gmax")
    b.layer("Pooling", [q], {0: 1, 4: 1}, name="gavg")
    graph = b.build()
    program = lower(graph, resolve("host"))
    assert program.steps[1].outputs[0].dtype == "i8"
    data = {"data": _data(5, (6, 9, 7))}
    got, want = run_jit(graph, data), simulate(graph, data)
    assert_matches({k: got[k] for k in ("avg", "gmax")}, {k: want[k] for k in ("avg", "gmax")})
    assert_matches({"gavg": got["gavg"]}, {"gavg": want["gavg"]})  # integer sums are exact in any order


def test_refusals():
    from ncnnc.core.errors import UnsupportedError

    for params in ({0: 2, 1: 2}, {0: 0, 1: 2, 3: -1}, {0: 0, 1: 2, 5: 4}):
        with pytest.raises(UnsupportedError, match="pool"):
            lower(_pool((3, 6, 6), params), resolve("host"))
