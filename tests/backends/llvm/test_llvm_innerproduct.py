"""InnerProduct (fp32 and int8) compiled by the LLVM backend against the numpy simulation.

int8 is bit-identical (atol=0), except through a fused sigmoid (expf vs numpy's exp:
``SIGMOID_ATOL``).  fp32 sums in another order than numpy's BLAS: the tolerance is
``1e-5 * max|x| * max row sum |w|`` (see ``backends/llvm/kernels/innerproduct.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Weight
from ncnnc.core.table import CalibrationTable
from ncnnc.plugins.quantizer import quantize

from .harness import assert_matches, run_jit, simulate

SIGMOID_ATOL = 2.5e-7
"""Sigmoid outputs lie in [0, 1]; expf vs numpy's exp moves them by at most a few 1e-8 (measured)."""

ACTIVATIONS = [(0, []), (1, []), (2, [0.1]), (3, [-0.5, 0.75]), (4, []), (6, [0.2, 0.5])]

SHAPES = st.sampled_from([(7,), (33,), (1,), (3, 5), (1, 17), (5, 3, 3), (3, 1, 1), (1, 4, 7), (6, 2, 5), (17, 3, 2)])


def _graph(rng, shape, n, act, bias, slice_from=0):
    """Input -> (optional channel Slice, so the InnerProduct reads a strided view) -> InnerProduct."""
    b = GraphBuilder()
    in_shape = (shape[0] + slice_from, *shape[1:]) if slice_from else shape
    x = b.input("data", in_shape)
    if slice_from:
        parts = b.layer("Slice", [x], {"slices": [slice_from, -233], "axis": 0}, outputs=2)
        x = parts[1]
        b.layer("Noop", [parts[0]], name="keep")
    k = int(np.prod(shape))
    act_type, act_params = act
    params = {"num_output": n, "bias_term": int(bias), "weight_data_size": n * k, "activation_type": act_type}
    if act_params:
        params["activation_params"] = act_params
    weights = {"weight": rng.normal(0, 0.5, n * k)}
    if bias:
        weights["bias"] = rng.normal(0, 0.5, n)
    b.layer("InnerProduct", [x], params, weights, name="fc")
    return b, in_shape


def _int8(graph, rng, n, in_shape):
    layer = graph.find("fc")
    table = CalibrationTable()
    table.weight_scales["fc"] = (127 / np.abs(layer.weight("weight").reshape(n, -1)).max(1)).astype(np.float32)
    table.input_scales["fc"] = float(rng.uniform(20, 60))
    return quantize(graph, table).graph


def _tolerance(graph, data):
    layer = graph.find("fc")
    n = layer.p("num_output")
    wsum = np.abs(layer.weight("weight").reshape(n, -1)).sum(1).max()
    return 1e-5 * float(np.abs(data).max()) * float(wsum)


@settings(max_examples=40, deadline=None)
@given(shape=SHAPES, n=st.integers(1, 37), act=st.sampled_from(ACTIVATIONS), bias=st.booleans(),
       sliced=st.sampled_from([0, 0, 3]), seed=st.integers(0, 2**31))
def test_int8_innerproduct_bit_identical(shape, n, act, bias, sliced, seed):
    rng = np.random.default_rng(seed)
    if sliced and len(shape) != 3:
        sliced = 0
    if shape == (1, 17):  # rows of num_input values: the fp32 row-by-row form, refused in int8
        shape = (17,)
    b, in_shape = _graph(rng, shape, n, act, bias, sliced)
    graph = _int8(b.build(), rng, n, in_shape)
    assert graph.find("fc").p("int8_scale_term") == 2
    data = {"data": rng.normal(0, 1.5, in_shape).astype(np.float32)}
    # sigmoid goes through expf, which may differ from numpy's exp by an ulp or two
    assert_matches(run_jit(graph, data), simulate(graph, data), atol=SIGMOID_ATOL if act[0] == 4 else 0.0)


@settings(max_examples=40, deadline=None)
@given(shape=SHAPES, n=st.integers(1, 37), act=st.sampled_from(ACTIVATIONS), bias=st.booleans(),
       sliced=st.sampled_from([0, 0, 2]), seed=st.integers(0, 2**31))
def test_fp32_innerproduct(shape, n, act, bias, sliced, seed):
    rng = np.random.default_rng(seed)
    if sliced and len(shape) != 3:
        sliced = 0
    b, in_shape = _graph(rng, shape, n, act, bias, sliced)
    graph = b.build()
    data = {"data": rng.normal(0, 1.5, in_shape).astype(np.float32)}
    assert_matches(run_jit(graph, data), simulate(graph, data), atol=_tolerance(graph, data["data"]))


@pytest.mark.parametrize("rows,k,n", [(1, 9, 5), (4, 13, 17), (3, 32, 16)])
def test_fp32_innerproduct_row_by_row(rows, k, n):
    """A 2-D input whose rows have num_input values: ``(h, k) -> (h, n)``."""
    rng = np.random.default_rng(rows * 100 + k)
    b = GraphBuilder()
    x = b.input("data", (rows, k))
    b.layer("InnerProduct", [x], {"num_output": n, "bias_term": 1, "weight_data_size": n * k},
            {"weight": rng.normal(0, 0.5, n * k), "bias": rng.normal(0, 0.5, n)}, name="fc")
    graph = b.build()
    data = {"data": rng.normal(0, 1.5, (rows, k)).astype(np.float32)}
    got, want = run_jit(graph, data), simulate(graph, data)
    assert got["fc"].shape == (rows, n)
    assert_matches(got, want, atol=_tolerance(graph, data["data"]))


@pytest.mark.parametrize("shape,sliced", [((5, 3, 4), 0), ((5, 3, 4), 2), ((19,), 0), ((2, 7), 0)])
def test_int8_innerproduct_reads_int8_input_as_is(shape, sliced):
    """A Quantize layer hands int8 to the InnerProduct, which takes it unchanged (also through a
    channel Slice: a strided int8 view)."""
    rng = np.random.default_rng(len(shape) + sliced)
    n = 11
    b = GraphBuilder()
    in_shape = (shape[0] + sliced, *shape[1:]) if sliced else shape
    x = b.input("data", in_shape)
    x = b.layer("Quantize", [x], {"scale_data_size": 1}, {"scale": Weight(np.float32([23.5]), "raw")})
    if sliced:
        parts = b.layer("Slice", [x], {"slices": [sliced, -233], "axis": 0}, outputs=2)
        x = parts[1]
        b.layer("Noop", [parts[0]], name="keep")
    k = int(np.prod(shape))
    b.layer("InnerProduct", [x], {"num_output": n, "bias_term": 1, "weight_data_size": n * k,
                                  "activation_type": 1}, {"weight": rng.normal(0, 0.5, n * k),
                                                          "bias": rng.normal(0, 0.5, n)}, name="fc")
    graph = _int8(b.build(), rng, n, in_shape)
    data = {"data": rng.normal(0, 2, in_shape).astype(np.float32)}
    assert_matches(run_jit(graph, data), simulate(graph, data))


def test_fp32_innerproduct_of_int8_blob():
    """An fp32 InnerProduct fed by a Quantize layer reads the int8 values as floats."""
    rng = np.random.default_rng(12)
    b = GraphBuilder()
    x = b.input("data", (6, 2, 3))
    x = b.layer("Quantize", [x], {"scale_data_size": 1}, {"scale": Weight(np.float32([7.0]), "raw")})
    b.layer("InnerProduct", [x], {"num_output": 19, "bias_term": 1, "weight_data_size": 19 * 36},
            {"weight": rng.normal(0, 0.5, 19 * 36), "bias": rng.normal(0, 0.5, 19)}, name="fc")
    graph = b.build()
    data = {"data": rng.normal(0, 2, (6, 2, 3)).astype(np.float32)}
    got, want = run_jit(graph, data), simulate(graph, data)
    assert_matches(got, want, atol=1e-5 * 127 * float(np.abs(graph.find("fc").weight("weight")).reshape(19, -1)
                                                      .sum(1).max()))


def test_int8_innerproduct_large_sums():
    """Sums far beyond float32's exact range: int32 accumulation stays exact."""
    rng = np.random.default_rng(9)
    b, in_shape = _graph(rng, (64, 8, 8), 21, (0, []), True)
    graph = b.build()
    graph.find("fc").weights["weight"] = Weight(np.sign(rng.normal(size=21 * 4096)).astype(np.float32), "fp32")
    graph = _int8(graph, rng, 21, in_shape)
    data = {"data": np.abs(rng.normal(3, 1, in_shape)).astype(np.float32)}
    assert_matches(run_jit(graph, data), simulate(graph, data))


def test_int8_innerproduct_refuses_rows():
    """``(1, k)`` int8: the shape rule says ``(1, n)``, the int8 simulation flattens to ``(n,)``."""
    from ncnnc.core.errors import UnsupportedError

    rng = np.random.default_rng(1)
    b, in_shape = _graph(rng, (1, 17), 4, (0, []), True)
    graph = _int8(b.build(), rng, 4, in_shape)
    with pytest.raises(UnsupportedError, match="row by row"):
        run_jit(graph, {"data": np.zeros(in_shape, np.float32)})


def test_innerproduct_refuses_mish():
    from ncnnc.core.errors import UnsupportedError

    rng = np.random.default_rng(0)
    b, _ = _graph(rng, (8,), 3, (5, []), False)
    with pytest.raises(UnsupportedError, match="fc"):
        run_jit(b.build(), {"data": np.zeros(8, np.float32)})
