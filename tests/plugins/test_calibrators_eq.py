"""``eq``: the int8 layer simulation against the real ncnn runtime, the search against ncnn2table's
literal (one candidate at a time) procedure, and the refine step on a small model."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import activation_scale, quant_targets, weight_scales
from ncnnc.core.table import CalibrationTable
from ncnnc.plugins.calibrators.eq import Int8Layer, LayerSearch, candidates, quantize
from ncnnc.plugins.quantizer import quantize as quantize_graph

RNG = np.random.default_rng(11)


def _graph(kind: str):
    b = GraphBuilder()
    x = b.input("data", (4, 9, 9))
    if kind == "conv3x3":
        b.layer("Convolution", [x], {0: 6, 1: 3, 4: 1, 5: 1, 6: 6 * 4 * 9, 9: 1},
                {"weight": RNG.standard_normal((6, 4, 3, 3)).astype(np.float32),
                 "bias": RNG.standard_normal(6).astype(np.float32)}, name="layer")
    elif kind == "conv1x1s2":
        b.layer("Convolution", [x], {0: 5, 1: 1, 3: 2, 5: 0, 6: 5 * 4},
                {"weight": RNG.standard_normal((5, 4, 1, 1)).astype(np.float32)}, name="layer")
    elif kind == "dw":
        b.layer("ConvolutionDepthWise", [x], {0: 4, 1: 3, 4: 1, 5: 1, 6: 36, 7: 4, 9: 1},
                {"weight": RNG.standard_normal((4, 1, 3, 3)).astype(np.float32),
                 "bias": RNG.standard_normal(4).astype(np.float32)}, name="layer")
    else:
        b.layer("InnerProduct", [x], {0: 7, 1: 1, 2: 7 * 324},
                {"weight": RNG.standard_normal((7, 324)).astype(np.float32),
                 "bias": RNG.standard_normal(7).astype(np.float32)}, name="layer")
    return b.build()


def _int8_output(sim: Int8Layer, x: np.ndarray, in_scale, w_scales: np.ndarray) -> np.ndarray:
    wq = quantize(sim.rows[:, None, :], w_scales[:, None, None])
    acc = sim.accumulate(quantize(x, in_scale), wq, 1)
    return sim.output(acc, in_scale, w_scales[:, None], slice(None))[:, :, 0]


@pytest.mark.parametrize("kind", ["conv3x3", "conv1x1s2", "dw", "ip"])
def test_int8_simulation_matches_ncnn_runtime(kind):
    graph = _graph(kind)
    layer = graph.layer("layer")
    x = (RNG.standard_normal((1, 4, 9, 9)) * 3).astype(np.float32)
    w_scales = weight_scales(layer)
    in_scale = activation_scale(float(np.abs(x).max()))
    table = CalibrationTable({"layer": w_scales}, {"layer": in_scale})
    int8_graph = quantize_graph(graph, table).graph
    expected = run_graph(int8_graph, {"data": x[0]}, [layer.outputs[0]])[layer.outputs[0]]
    got = _int8_output(Int8Layer(layer), x, in_scale, w_scales)[0].reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))


def _cosines(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    a, b = out.reshape(len(out), -1).astype(np.float64), ref.reshape(len(ref), -1).astype(np.float64)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1)) / np.sqrt((b * b).sum(1))


def _literal_search(sim: Int8Layer, x, y, w_scales, in_scale, steps):
    """ncnn2table's EQ for one layer: every candidate of every scale, the whole layer each time."""
    w_scales = w_scales.copy()
    for j in range(len(w_scales)):
        grid = candidates(w_scales[j:j + 1], steps, 0.5, 2.0)[0]
        sums = []
        for c in grid:
            trial = w_scales.copy()
            trial[j] = c
            sums.append(_cosines(_int8_output(sim, x, in_scale, trial), y).sum())
        if max(sums) > 0:
            w_scales[j] = grid[int(np.argmax(sums))]
    grid = candidates(np.array([in_scale]), steps, 0.5, 2.0)[0]
    sums = [_cosines(_int8_output(sim, x, c, w_scales), y).sum() for c in grid]
    return w_scales, grid[int(np.argmax(sums))]


@pytest.mark.parametrize("kind", ["conv3x3", "dw", "ip"])
def test_search_equals_ncnn2tables_procedure(kind):
    graph = _graph(kind)
    target = quant_targets(graph)[0]
    from ncnnc.backends.numpy import Interpreter

    x = (RNG.standard_normal((3, 4, 9, 9)) * 2).astype(np.float32)
    y = Interpreter(graph).run({"data": x})[target.layer.outputs[0]]
    w0, s0 = weight_scales(target.layer), activation_scale(float(np.abs(x).max()) * 0.6)
    expected_w, expected_s = _literal_search(Int8Layer(target.layer), x, y, w0, s0, steps=12)
    search = LayerSearch(target, w0, s0, steps=12, lower=0.5, upper=2.0)
    search.observe_weights(x[:2], y[:2])  # two batches: the statistics are kept per image
    search.observe_weights(x[2:], y[2:])
    search.choose_weights()
    np.testing.assert_array_equal(search.weight_scales, expected_w)
    search.observe_input(x[:1], y[:1])
    search.observe_input(x[1:], y[1:])
    search.choose_input()
    assert search.input_scale == expected_s
