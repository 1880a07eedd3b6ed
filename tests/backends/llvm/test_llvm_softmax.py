"""Softmax compiled by the LLVM backend against the numpy simulation.

Tolerance (see ``backends/llvm/kernels/softmax.py``): the sums follow numpy's order (pairwise or
sequential), only ``expf`` vs numpy's exp differs: ``rtol=1e-6`` (about 8 float32 ulps), ``atol=1e-37``
for subnormal outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import UnsupportedError
from ncnnc.core.ir import Weight

from .harness import assert_matches, run_jit, simulate

RTOL, ATOL = 1e-6, 1e-37

SIZES = st.sampled_from([1, 2, 3, 5, 7, 8, 13, 16, 17, 33])


def _ulps(got: np.ndarray, want: np.ndarray) -> int:
    """Largest distance in float32 units in the last place (finite values of one sign)."""
    g, w = got.astype(np.float32).view(np.int32), want.astype(np.float32).view(np.int32)
    return int(np.abs(g.astype(np.int64) - w).max())


def _graph(shape, axis, fixbug=1, strided=0, quantize=False):
    """Input -> (optional Quantize: an int8 input) -> (optional channel Slice: a strided input) ->
    Softmax -> (with ``strided``: Concat with a copy of the input, so the output is strided too)."""
    b = GraphBuilder()
    in_shape = (shape[0] + strided, *shape[1:]) if strided else shape
    x = b.input("data", in_shape)
    if quantize:
        x = b.layer("Quantize", [x], {"scale_data_size": 1}, {"scale": Weight(np.float32([30.0]), "raw")})
    if strided:
        parts = b.layer("Slice", [x], {"slices": [strided, -233], "axis": 0}, outputs=2)
        y = b.layer("Softmax", [parts[1]], {"axis": axis, "fixbug0": fixbug}, name="sm")
        if quantize:
            b.layer("Noop", [parts[0]], name="keep")
        else:
            b.layer("Concat", [y, parts[0]], {"axis": 0}, name="cat")
    else:
        b.layer("Softmax", [x], {"axis": axis, "fixbug0": fixbug}, name="sm")
    return b.build(), in_shape


@st.composite
def cases(draw):
    dims = draw(st.integers(1, 3))
    shape = tuple(draw(SIZES) for _ in range(dims))
    axis = draw(st.integers(-dims, dims - 1))
    strided = draw(st.sampled_from([0, 0, 3])) if dims == 3 else 0
    return shape, axis, strided


@settings(max_examples=40, deadline=None)
@given(case=cases(), scale=st.sampled_from([0.1, 3.0, 30.0]), seed=st.integers(0, 2**31))
def test_softmax_matches_simulation(case, scale, seed):
    shape, axis, strided = case
    rng = np.random.default_rng(seed)
    graph, in_shape = _graph(shape, axis, strided=strided)
    data = {"data": rng.normal(0, scale, in_shape).astype(np.float32)}
    got, want = run_jit(graph, data), simulate(graph, data)
    assert_matches(got, want, atol=ATOL, rtol=RTOL)


def test_softmax_measured_ulps():
    """The documented tolerance is measured, not guessed: a handful of ulps at most."""
    rng = np.random.default_rng(1)
    worst = 0
    for shape, axis in [((64,), 0), ((9, 64), 1), ((64, 9), 0), ((64, 5, 6), 0), ((7, 64, 3), 1), ((5, 3, 64), 2),
                        ((1000,), 0), ((300, 1, 1), 0), ((3, 2, 257), -1), ((200, 3), 0)]:
        graph, in_shape = _graph(shape, axis)
        data = {"data": rng.normal(0, 3, in_shape).astype(np.float32)}
        got, want = run_jit(graph, data)["sm"], simulate(graph, data)["sm"]
        normal = want > 1e-30
        worst = max(worst, _ulps(got[normal], want[normal]))
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    assert worst <= 6, worst


def test_softmax_refuses_int8_input():
    """The simulation's softmax of an int8 blob wraps around in int8 and takes a float16 exp."""
    graph, in_shape = _graph((5, 4, 3), 0, strided=2, quantize=True)
    with pytest.raises(UnsupportedError, match="sm"):
        run_jit(graph, {"data": np.zeros(in_shape, np.float32)})


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_softmax_strided_input_and_output(axis):
    """A channel Slice makes the input strided, a Concat along channels the output."""
    rng = np.random.default_rng(axis + 5)
    graph, in_shape = _graph((5, 4, 3), axis, strided=4)
    data = {"data": rng.normal(0, 2, in_shape).astype(np.float32)}
    assert_matches(run_jit(graph, data), simulate(graph, data), atol=ATOL, rtol=RTOL)


def test_softmax_fixbug0_has_no_effect_and_nan_propagates():
    """``1=fixbug0`` is read as the simulation reads it (not at all); a NaN poisons its own softmax only."""
    graph, _ = _graph((4, 6), 1, fixbug=0)
    x = np.arange(24, dtype=np.float32).reshape(4, 6) / 7
    x[1, 2] = np.nan
    x[2, 3] = np.inf
    got, want = run_jit(graph, {"data": x}), simulate(graph, {"data": x})
    assert np.isnan(got["sm"][1]).all() and np.isfinite(got["sm"][0]).all()
    assert_matches(got, want, atol=ATOL, rtol=RTOL)
