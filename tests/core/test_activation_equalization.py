"""Activation equalization on a small synthetic network: which producers it rescales (through max and average
pooling, Split and Concat, into plain and depthwise convolutions), that the fp32 network computes the same in
the real ncnn runtime, that the channel ranges move toward the blob's range, and that the int8 simulation's
error falls on inputs it did not measure."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.activation_equalization import MAX_FACTOR, channel_ranges, equalize_activations, groups
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import activation_scale, weight_scales
from ncnnc.core.shapes import infer_shapes
from ncnnc.core.table import CalibrationTable
from ncnnc.plugins.quantizer import quantize


def _conv(b, x, cin, cout, k, act, name, rng, spread=1.0, dw=False):
    """A convolution whose output channels' magnitudes spread over ``spread``x (so do their activations)."""
    w = rng.standard_normal((cout, 1 if dw else cin, k, k)).astype(np.float32) / np.sqrt((1 if dw else cin) * k * k)
    w *= np.exp(rng.uniform(-np.log(spread), np.log(spread), cout)).astype(np.float32)[:, None, None, None]
    params = {0: cout, 1: k, 4: k // 2, 5: 1, 6: w.size, 9: act}
    if dw:
        params[7] = cout
    return b.layer("ConvolutionDepthWise" if dw else "Convolution", [x], params,
                   {"weight": w, "bias": (0.1 * rng.standard_normal(cout)).astype(np.float32)}, name=name)


def _model(rng):
    b = GraphBuilder()
    x = b.input("data", (4, 12, 12))
    a = _conv(b, x, 4, 8, 3, 1, "a", rng, spread=20)
    a = b.layer("Pooling", [a], {0: 0, 1: 2, 2: 2}, name="maxpool")
    s1, s2 = b.layer("Split", [a], outputs=2, name="split")
    b1 = _conv(b, s1, 8, 6, 1, 1, "b1", rng, spread=20)
    b2 = _conv(b, s2, 8, 10, 3, 1, "b2", rng, spread=20)
    y = b.layer("Concat", [b1, b2], name="concat")
    y = b.layer("Pooling", [y], {0: 1, 1: 3, 2: 1, 3: 1}, name="avgpool")
    c = _conv(b, y, 16, 12, 1, 2, "c", rng, spread=20)  # leaky ReLU: commutes too
    d = _conv(b, c, 12, 12, 3, 3, "d", rng, dw=True)  # ReLU6: bounded, not a producer
    e = _conv(b, d, 12, 6, 1, 1, "e", rng, spread=20)
    f = _conv(b, e, 6, 6, 1, 0, "f", rng)
    b.layer("BinaryOp", [e, f], {0: 0}, name="out")  # e also feeds an element-wise layer: not rescaled
    graph = b.build()
    graph.layer("c").params["activation_params"] = [0.1]
    graph.layer("d").params["activation_params"] = [0.0, 6.0]
    return graph


def _inputs(rng, n):
    return {"data": rng.standard_normal((n, 4, 12, 12)).astype(np.float32)}


def test_groups_follow_pooling_split_and_concat_into_plain_and_depthwise_readers():
    graph = _model(np.random.default_rng(1))
    shapes = infer_shapes(graph.copy(), {"data": (4, 12, 12)})
    found = {g.producer.name: sorted((r.name, offset, width) for r, offset, width in g.readers)
             for g in groups(graph, {k: v[0] for k, v in shapes.items() if len(v) == 3})}
    assert found == {"a": [("b1", 0, 8), ("b2", 0, 8)], "b1": [("c", 0, 16)], "b2": [("c", 6, 16)],
                     "c": [("d", 0, 12)]}
    b = GraphBuilder()  # one blob twice in a Concat: two slices would need the factors, not handled
    p = _conv(b, b.input("data", (4, 6, 6)), 4, 4, 1, 1, "p", np.random.default_rng(1))
    _conv(b, b.layer("Concat", [p, p], name="twice"), 8, 2, 1, 0, "r", np.random.default_rng(1))
    assert not groups(b.build(), {"data": 4, "p": 4, "twice": 8})


def test_an_fp32_identity_in_the_runtime_that_evens_the_channel_ranges():
    rng = np.random.default_rng(2)
    graph = _model(rng)
    before = graph.copy()
    measure = _inputs(rng, 16)
    changes = equalize_activations(graph, measure)
    assert {line.split(" -> ")[0] for line in changes} == {"a", "b1", "b2", "c"}
    for name in ("d", "e", "f"):
        np.testing.assert_array_equal(graph.layer(name).weight("bias"), before.layer(name).weight("bias"))
    np.testing.assert_array_equal(graph.layer("e").weight("weight"), before.layer("e").weight("weight"))
    x = _inputs(rng, 1)["data"][0]
    want = run_graph(before, {"data": x})["out"]
    got = run_graph(graph, {"data": x})["out"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    blobs = ["maxpool", "concat"]
    old, new = channel_ranges(before, measure, blobs), channel_ranges(graph, measure, blobs)
    for blob in blobs:
        assert np.all(new[blob] >= old[blob] * (1 - 1e-5))  # channels only grow ...
        assert np.all(new[blob] <= old[blob] * MAX_FACTOR * (1 + 1e-5))
        assert new[blob].max() <= old[blob].max() * (1 + 1e-5)  # ... within the blob's range
        gap_old, gap_new = np.log(old[blob].max() / old[blob]), np.log(new[blob].max() / new[blob])
        assert gap_new.mean() < 0.75 * gap_old.mean()  # and move toward it


def _table(graph, data):
    """absmax input scales and ncnn2table's weight scales for every convolution."""
    convs = [layer for layer in graph.layers if layer.type in ("Convolution", "ConvolutionDepthWise")]
    blobs = Interpreter(graph).run(data, [layer.inputs[0] for layer in convs])
    return CalibrationTable({layer.name: weight_scales(layer) for layer in convs},
                            {layer.name: activation_scale(float(np.abs(blobs[layer.inputs[0]]).max()))
                             for layer in convs})


def test_the_int8_error_falls_on_unseen_inputs():
    rng = np.random.default_rng(3)
    graph = _model(rng)
    equalized = graph.copy()
    measure, unseen = _inputs(rng, 16), _inputs(rng, 16)
    equalize_activations(equalized, measure)
    want = Interpreter(graph).run(unseen, ["out"])
    errors = []
    for g in (graph, equalized):
        got = Interpreter(quantize(g, _table(g, measure)).graph).run(unseen, ["out"])["out"]
        errors.append(float(np.mean((got - want["out"]) ** 2)))
    assert errors[1] < 0.7 * errors[0], errors
