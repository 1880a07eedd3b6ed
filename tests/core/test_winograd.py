"""8-bit weights for winograd convolutions: the per-channel sum budget, and the real runtime computing
exactly what the simulation does within it (and not beyond it: the overflow the budget prevents is real)."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import weight_rows, weight_scales
from ncnnc.core.errors import NcnncError
from ncnnc.core.table import CalibrationTable
from ncnnc.core.winograd import WINOGRAD_SUM_LIMIT, as_written, weight_sums, winograd_scales
from ncnnc.plugins.quantizer import quantize

RNG = np.random.default_rng(8)


def _conv3x3(cin: int, cout: int, weight: np.ndarray | None = None):
    """One 3x3 stride-1 pad-1 convolution (the layers ncnn runs with int8 winograd)."""
    b = GraphBuilder()
    x = b.input("data", (cin, 12, 12))
    w = RNG.standard_normal((cout, cin, 3, 3)).astype(np.float32) if weight is None else weight
    b.layer("Convolution", [x], {0: cout, 1: 3, 4: 1, 5: 1, 6: w.size},
            {"weight": w, "bias": np.zeros(cout, np.float32)}, name="out")
    return b.build()


@pytest.mark.parametrize("cin", [4, 64, 512])
def test_winograd_scales_are_the_largest_within_the_budget(cin):
    graph = _conv3x3(cin, 16)
    layer = graph.layer("out")
    rows = weight_rows(layer)
    absmax = np.abs(rows).max(axis=1)
    scales = weight_scales(layer, winograd_bits=8)
    sums = weight_sums(rows, scales)
    assert np.all(sums <= WINOGRAD_SUM_LIMIT)
    qmax = np.rint(scales * absmax)
    wider = as_written(np.minimum(qmax + 1, 127) / absmax)
    at_127 = qmax == 127
    assert np.all(at_127 | (weight_sums(rows, wider) > WINOGRAD_SUM_LIMIT))  # one level more would not fit
    if cin == 4:
        assert np.all(at_127)  # small layers get full 8 bits
    if cin == 512:  # wide layers get fewer levels; ncnn2table's 6 bits exceed the budget on some channels
        assert np.all(qmax < 127) and np.any(weight_sums(rows, np.float32(31) / absmax) > WINOGRAD_SUM_LIMIT)
    np.testing.assert_array_equal(weight_scales(layer), np.float32(31) / absmax)  # the default is ncnn2table's


def test_winograd_scales_keep_zero_rows_finite_and_reject_other_bits():
    rows = np.zeros((2, 9), np.float32)
    rows[1] = 1.0
    np.testing.assert_array_equal(winograd_scales(rows, np.abs(rows).max(axis=1)), [1.0, 127.0])
    with pytest.raises(NcnncError, match="winograd bits 7"):
        weight_scales(_conv3x3(4, 2).layer("out"), winograd_bits=7)


def _runtime_and_simulation(graph, table, x):
    int8 = quantize(graph, table).graph
    return run_graph(int8, {"data": x})["out"], Interpreter(int8).run({"data": x[None]}, ["out"])["out"][0]


def test_within_the_budget_the_runtime_winograd_is_exact_and_beyond_it_overflows():
    """All weights equal and the input saturated: the direct sum is ``127 * qmax * 9 * cin``.  With 64 input
    channels, 127 levels would need ``576 * 127 * 127 * 576 > 2^31``: ncnn's int8 winograd wraps around.
    The budgeted scale (qmax 50) keeps it exact, as the simulation computes it."""
    cin = 64
    graph = _conv3x3(cin, 16, np.full((16, cin, 3, 3), 0.01, np.float32))
    x = np.full((cin, 12, 12), 5.0, np.float32)
    layer = graph.layer("out")
    budgeted = CalibrationTable({"out": weight_scales(layer, winograd_bits=8)}, {"out": 127 / 5.0})
    assert np.all(np.rint(budgeted.weight_scales["out"] * 0.01) == WINOGRAD_SUM_LIMIT // (9 * cin))
    runtime, simulated = _runtime_and_simulation(graph, budgeted, x)
    np.testing.assert_allclose(runtime, simulated, rtol=1e-5)
    np.testing.assert_allclose(simulated[:, 5, 5], 0.01 * 5.0 * 9 * cin, rtol=1e-2)
    naive = CalibrationTable({"out": np.full(16, 127 / 0.01, np.float32)}, {"out": 127 / 5.0})
    runtime, simulated = _runtime_and_simulation(graph, naive, x)
    assert np.abs(runtime[:, 5, 5] - simulated[:, 5, 5]).max() > 0.5 * np.abs(simulated).max()


def test_learned_rounding_keeps_8_bit_winograd_channels_within_the_budget():
    """On a wide 3x3 layer the budgeted scales are the largest allowed: adaround's wider scales and its
    roundings up must not push a channel past the sum, and the runtime still computes it exactly."""
    from ncnnc.core.calibration import activation_scale
    from ncnnc.core.refine import find_refiner, refine_graph

    graph = _conv3x3(256, 8)
    x = np.abs(RNG.standard_normal((16, 256, 12, 12))).astype(np.float32)
    layer = graph.layer("out")
    table = CalibrationTable({"out": weight_scales(layer, winograd_bits=8)},
                             {"out": activation_scale(float(x.max()))})
    before = np.rint(table.weight_scales["out"] * np.abs(weight_rows(layer)).max(axis=1))
    assert np.all(before < 127)  # the budget binds on every channel
    refine_graph(graph, table, {"data": x}, [find_refiner("adaround")], {"adaround_samples": 0.5}, winograd_bits=8)
    sums = weight_sums(weight_rows(graph.layer("out")), table.weight_scales["out"])
    assert np.all(sums <= WINOGRAD_SUM_LIMIT)
    runtime, simulated = _runtime_and_simulation(graph, table, x[0])
    np.testing.assert_allclose(runtime, simulated, rtol=1e-5, atol=1e-5 * float(np.abs(simulated).max()))


def test_the_eq_search_keeps_winograd_channels_within_the_budget(tmp_path):
    """EQ tries weight scales up to 2x the table's; on a wide 3x3 layer at 8 bits those beyond the budget
    would be chosen (finer steps for the small weights) unless they are ruled out."""
    from ncnnc.core.calibration import calibrate

    graph = _conv3x3(256, 8)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"x{i}.npy")
        np.save(paths[-1], np.abs(RNG.standard_normal((256, 12, 12))).astype(np.float32))
    table = calibrate(graph, lists=[paths], method="eq", npy=True, winograd_bits=8,
                      method_params={"images": 4, "steps": 20}).table
    assert np.all(weight_sums(weight_rows(graph.layer("out")), table.weight_scales["out"]) <= WINOGRAD_SUM_LIMIT)
