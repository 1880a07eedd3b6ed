"""Detection post-processing, ROI pooling and shape-utility layers of the numpy backend against the real
ncnn runtime, on tiny generated models: PriorBox, DetectionOutput (ties in the scores, so that ncnn's
quicksort order and NMS decide), Yolov3DetectionOutput, YoloDetectionOutput, Proposal + ROIPooling,
PSROIPooling, Squeeze, ExpandDims, Einsum, Reorg, LRN and Reshape shape expressions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy import Interpreter
from ncnnc.backends.numpy.nms import qsort_descent
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Graph
from ncnnc.core.shapes import infer_shapes
from ncnnc.core.shapes_extra import DATA_DEPENDENT


def compare(graph: Graph, inputs: Mapping[str, np.ndarray], tol: float = 1e-5) -> dict[str, np.ndarray]:
    """Every output equal to the runtime's (an empty runtime blob = no rows), within ``tol`` of the scale;
    shapes as inferred (for detection layers: at most the inferred row count)."""
    ours = Interpreter(graph).run({k: v[None] for k, v in inputs.items()})
    theirs = run_graph(graph, inputs)
    shapes = infer_shapes(graph, {k: v.shape for k, v in inputs.items()})
    kinds = {b: layer.type for layer in graph.layers for b in layer.outputs}
    for name in graph.outputs:
        a, r = ours[name][0], theirs[name]
        if r.size == 0:
            assert a.size == 0, f"{name}: numpy has {a.shape}, the runtime nothing"
            continue
        assert a.shape == r.shape, f"{name}: numpy {a.shape} vs ncnn {r.shape}"
        if kinds[name] in DATA_DEPENDENT:
            assert r.shape[1:] == shapes[name][1:] and r.shape[0] <= shapes[name][0]
        else:
            assert r.shape == shapes[name]
        scale = max(float(np.abs(r).max()), 1.0)
        assert float(np.abs(a - r).max()) <= tol * scale, f"{name}: max diff {np.abs(a - r).max()}"
    return theirs


def test_qsort_descent_is_ncnns_quicksort_order() -> None:
    """Equal scores keep the order ncnn's Hoare quicksort leaves (not a stable sort's)."""
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.9, 0.1], np.float32)
    order = qsort_descent(scores)
    assert list(scores[order]) == sorted(scores, reverse=True)
    assert list(order) == [1, 4, 3, 0, 2, 5]  # traced by hand; a stable sort gives [1, 4, 0, 2, 3, 5]


@pytest.mark.parametrize("params", [
    {0: [30.0], 1: [60.0], 2: [2.0, 3.0], 9: -233, 10: -233, 13: 0.5},                  # SSD, flip
    {0: [30.0, 45.0], 2: [2.0], 7: 0, 8: 1, 9: 300, 10: 300, 11: 16.0, 12: 16.0, 13: 0.5},  # clip, fixed size
    {0: [20.0], 1: [40.0], 2: [2.0], 9: -233, 10: -233, 13: 0.5, 14: 1, 15: 1},            # mmdetection
])
def test_priorbox(params: dict) -> None:
    """Caffe-SSD priors for a feature map of an image."""
    b = GraphBuilder()
    feat, image = b.input("feat", (8, 5, 7)), b.input("image", (3, 80, 112))
    b.layer("PriorBox", [feat, image], params)
    rng = np.random.default_rng(0)
    compare(b.build(), {"feat": rng.standard_normal((8, 5, 7), np.float32),
                        "image": rng.standard_normal((3, 80, 112), np.float32)})


def test_priorbox_mxnet() -> None:
    """mxnet's MultiBoxPrior form: one input, image size -233, no max sizes."""
    b = GraphBuilder()
    feat = b.input("feat", (4, 6, 5))
    b.layer("PriorBox", [feat], {0: [0.2, 0.3], 2: [1.0, 2.0, 0.5], 9: -233, 10: -233, 13: 0.5})
    compare(b.build(), {"feat": np.zeros((4, 6, 5), np.float32)})


def ssd_inputs(num_prior: int, num_class: int, seed: int) -> dict[str, np.ndarray]:
    """Locations, softmax-like confidences quantized to a few levels (ties), and prior boxes."""
    rng = np.random.default_rng(seed)
    loc = rng.uniform(-1, 1, num_prior * 4).astype(np.float32)
    conf = rng.choice(np.array([0.05, 0.3, 0.3, 0.6, 0.6, 0.9], np.float32), (num_prior, num_class))
    conf[:, 0] = rng.choice(np.array([0.1, 0.2], np.float32), num_prior)
    centres = rng.uniform(0.2, 0.8, (num_prior, 2)).astype(np.float32)
    sizes = rng.uniform(0.1, 0.4, (num_prior, 2)).astype(np.float32)
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).reshape(-1)
    priors = np.stack([boxes, np.tile(np.array([0.1, 0.1, 0.2, 0.2], np.float32), num_prior)])
    return {"loc": loc, "conf": conf.reshape(-1), "priors": priors}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("params", [
    {0: 4, 1: 0.45, 2: 100, 3: 50, 4: 0.25},
    {0: 4, 1: 0.3, 2: 5, 3: 7, 4: 0.5},   # nms_top_k and keep_top_k cut ties
])
def test_detection_output(seed: int, params: dict) -> None:
    """SSD detections, rows and their order equal to ncnn's."""
    inputs = ssd_inputs(40, 4, seed)
    b = GraphBuilder()
    names = [b.input(k, v.shape) for k, v in inputs.items()]
    b.layer("DetectionOutput", names, params)
    out = compare(b.build(), inputs)
    assert len(next(iter(out.values()))) > 3  # the case detects something


def yolo_input(channels: int, h: int, w: int, seed: int) -> np.ndarray:
    """Head outputs with repeated values, so that equal confidences occur."""
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-2.0, -0.5, 0.0, 0.5, 1.5, 3.0], np.float32), (channels, h, w))


def test_yolov3_detection_output() -> None:
    """Two scales, masks written as float bits (as ncnn's example models write them)."""
    biases = [10.0, 13.0, 16.0, 30.0, 33.0, 23.0, 30.0, 61.0]
    mask = [int(np.array(v, np.float32).view(np.int32)) for v in (2.0, 3.0, 0.0, 1.0)]
    b = GraphBuilder()
    x1, x2 = b.input("a", (2 * 8, 4, 5)), b.input("b", (2 * 8, 8, 10))
    b.layer("Yolov3DetectionOutput", [x1, x2], {0: 3, 1: 2, 2: 0.3, 3: 0.45, 4: biases, 5: mask, 6: [32.0, 16.0]})
    out = compare(b.build(), {"a": yolo_input(16, 4, 5, 0), "b": yolo_input(16, 8, 10, 1)})
    assert len(next(iter(out.values()))) > 3


def test_yolo_detection_output() -> None:
    """YOLOv2: softmax over the class channels, then decoding and NMS."""
    b = GraphBuilder()
    x = b.input("a", (2 * 8, 6, 6))
    b.layer("YoloDetectionOutput", [x], {0: 3, 1: 2, 2: 0.2, 3: 0.45, 4: [1.0, 1.5, 3.0, 2.0]})
    out = compare(b.build(), {"a": yolo_input(16, 6, 6, 2)})
    assert len(next(iter(out.values()))) > 3


def test_proposal_roipooling_psroipooling() -> None:
    """Faster R-CNN / R-FCN: proposals from scores and deltas, then both ROI poolings of the first roi."""
    rng = np.random.default_rng(3)
    h, w = 6, 8
    b = GraphBuilder()
    score, deltas, info = b.input("score", (18, h, w)), b.input("deltas", (36, h, w)), b.input("info", (3,))
    feat, psfeat = b.input("feat", (5, h, w)), b.input("psfeat", (2 * 3 * 3, h, w))
    rois, _ = b.layer("Proposal", [score, deltas, info], {0: 16, 2: 200, 3: 20, 4: 0.7, 5: 4}, outputs=2)
    rois1, rois2 = b.layer("Split", [rois], outputs=2)
    b.layer("ROIPooling", [feat, rois1], {0: 3, 1: 2, 2: 0.0625})
    b.layer("PSROIPooling", [psfeat, rois2], {0: 3, 1: 3, 2: 0.0625, 3: 2})
    compare(b.build(), {"score": rng.uniform(0, 1, (18, h, w)).astype(np.float32),
                    "deltas": rng.uniform(-0.3, 0.3, (36, h, w)).astype(np.float32),
                    "info": np.array([h * 16, w * 16, 1.0], np.float32),
                    "feat": rng.standard_normal((5, h, w)).astype(np.float32),
                    "psfeat": rng.standard_normal((18, h, w)).astype(np.float32)})


@pytest.mark.parametrize("ltype,shape,params", [
    ("Squeeze", (1, 5, 1), {3: [0, 2]}),
    ("Squeeze", (4, 1, 6), {1: 1}),
    ("Squeeze", (1, 1, 1), {0: 1, 1: 1, 2: 1}),
    ("ExpandDims", (5, 6), {3: [0]}),
    ("ExpandDims", (7,), {3: [1, 2]}),
    ("ExpandDims", (3, 4, 5), {3: [-1]}),
    ("Reorg", (3, 8, 6), {0: 2}),
    ("Reorg", (3, 6, 9), {0: 3, 1: 1}),
    ("LRN", (7, 5, 6), {0: 0, 1: 5, 2: 0.5, 3: 0.75, 4: 2.0}),
    ("LRN", (3, 6, 7), {0: 1, 1: 3, 2: 0.3, 3: 0.6}),
])
def test_one_input_layers(ltype: str, shape: tuple, params: dict) -> None:
    """Shape-utility and normalisation layers on one random input."""
    b = GraphBuilder()
    b.layer(ltype, [b.input("x", shape)], params)
    compare(b.build(), {"x": np.random.default_rng(4).standard_normal(shape).astype(np.float32)}, tol=1e-4)


@pytest.mark.parametrize("equation,shapes", [
    ("imjk,lim->ijkl", [(2, 3, 4, 5), (6, 2, 3)]),
    ("ljk,il->ijk", [(3, 4, 5), (2, 3)]),
    ("ii", [(4, 4)]),
])
def test_einsum(equation: str, shapes: list) -> None:
    """Einsum's equations as YOLOv8-World writes them, and the trace."""
    rng = np.random.default_rng(5)
    b = GraphBuilder()
    names = [b.input(f"x{i}", s) for i, s in enumerate(shapes)]
    b.layer("Einsum", names, {0: [ord(c) for c in equation]})
    compare(b.build(), {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}, tol=1e-4)


def test_reshape_shape_expression() -> None:
    """Reshape ``6="1w,1h,128"``-style expressions reading the sizes of a second input (YOLO11's attention)."""
    b = GraphBuilder()
    x, ref = b.input("x", (8, 6 * 5)), b.input("ref", (2, 6, 5))
    x1, x2 = b.layer("Split", [x], outputs=2)
    b.layer("Reshape", [x1, ref], {6: "1w,1h,8"})
    b.layer("Reshape", [x2], {6: "//(0w,5),*(0h,5)"})
    rng = np.random.default_rng(6)
    compare(b.build(), {"x": rng.standard_normal((8, 30)).astype(np.float32),
                        "ref": rng.standard_normal((2, 6, 5)).astype(np.float32)})


@pytest.mark.parametrize("ltype,shape,params,weights", [
    ("MVN", (4, 5, 6), {0: 1, 1: 0}, {}),
    ("MVN", (4, 5, 6), {0: 1, 1: 1, 2: 0.01}, {}),
    ("MVN", (3, 7), {0: 0}, {}),
    ("Normalize", (4, 5, 6), {0: 1, 4: 1, 1: 0, 3: 4}, {"scale": [1.0, 2.0, 0.5, 3.0]}),
    ("Normalize", (4, 5, 6), {0: 1, 4: 0, 1: 1, 2: 0.01, 9: 1, 3: 1}, {"scale": [2.0]}),
    ("Normalize", (4, 5, 6), {0: 0, 4: 1, 1: 0, 9: 2, 3: 4}, {"scale": [1.0, 2.0, 0.5, 3.0]}),
    ("Normalize", (4, 5, 6), {0: 0, 4: 1, 1: 1, 3: 1}, {"scale": [1.5]}),
    ("StatisticsPooling", (4, 5, 6), {0: 1}, {}),
    ("StatisticsPooling", (4, 5, 6), {}, {}),
    ("Packing", (4, 5, 6), {0: 4}, {}),
])
def test_statistics_layers(ltype: str, shape: tuple, params: dict, weights: dict) -> None:
    """Normalisation, pooling statistics and argmax (ties included: the input has repeated values)."""
    b = GraphBuilder()
    b.layer(ltype, [b.input("x", shape)], params, weights)
    x = np.random.default_rng(7).choice(np.linspace(-2, 2, 9, dtype=np.float32), shape)
    compare(b.build(), {"x": x}, tol=1e-4)


@pytest.mark.parametrize("params", [{1: 3}, {0: 1, 1: 4}])
def test_argmax(params: dict) -> None:
    """ArgMax (not built into the PyPI ncnn runtime, so checked against ncnn's rule: pairs (value, index)
    sorted descending, the larger index first among equal values), in the inferred shape."""
    b = GraphBuilder()
    b.layer("ArgMax", [b.input("x", (12,))], params)
    graph = b.build()
    x = np.array([1, 5, 3, 5, 2, 5, 0, 1, 4, 4, 3, 2], np.float32)
    out = Interpreter(graph).run({"x": x[None]})[graph.outputs[0]][0]
    assert out.shape == infer_shapes(graph, {"x": (12,)})[graph.outputs[0]]
    assert list(out[-1]) == [5, 3, 1, 9][: params[1]]
    if params.get(0):
        assert list(out[0]) == [5, 5, 5, 4]


def recurrent_weights(ltype: str, params: dict, seed: int) -> dict:
    """Random weights of a recurrent layer, by its schema."""
    from ncnnc.core.ir import Layer
    from ncnnc.core.params import ParamDict
    from ncnnc.core.random_weights import random_weight

    pd = ParamDict(ltype)
    for k, v in params.items():
        pd[k] = v
    rng = np.random.default_rng(seed)
    return {s.name: random_weight(s, rng) for s in Layer(ltype, "l", [], [], pd).weight_specs()}


@pytest.mark.parametrize("ltype,params,states", [
    ("RNN", {0: 6, 1: 6 * 5, 2: 0}, 0),
    ("RNN", {0: 6, 1: 2 * 6 * 5, 2: 2}, 1),
    ("LSTM", {0: 6, 1: 4 * 6 * 5, 2: 1}, 0),
    ("LSTM", {0: 4, 1: 2 * 4 * 7 * 5, 2: 2, 3: 7}, 2),   # projection (hidden 7 -> 4), both directions
    ("GRU", {0: 6, 1: 3 * 6 * 5, 2: 0}, 1),
    ("GRU", {0: 6, 1: 2 * 3 * 6 * 5, 2: 2}, 0),
])
def test_recurrent(ltype: str, params: dict, states: int) -> None:
    """RNN, LSTM, GRU over 7 steps of 5 features; with ``states``, initial states are inputs and the
    final states outputs."""
    dirs = 2 if params[2] == 2 else 1
    sizes = [params[0]] + ([params.get(3, params[0])] if ltype == "LSTM" else [])
    rng = np.random.default_rng(8)
    b = GraphBuilder()
    names = [b.input("x", (7, 5))] + [b.input(f"s{i}", (dirs, s)) for i, s in enumerate(sizes[:states])]
    b.layer(ltype, names, params, recurrent_weights(ltype, params, 9), outputs=1 + states)
    inputs = {"x": rng.standard_normal((7, 5)).astype(np.float32)}
    inputs |= {f"s{i}": rng.standard_normal((dirs, s)).astype(np.float32) for i, s in enumerate(sizes[:states])}
    compare(b.build(), inputs, tol=1e-4)


@pytest.mark.parametrize("params", [
    {0: 3, 1: 2, 2: 0.25, 3: 2, 4: 0, 5: 0},
    {0: 4, 1: 4, 2: 0.25, 3: 0, 4: 1, 5: 0},
    {0: 3, 1: 3, 2: 0.5, 3: 0, 4: 1, 5: 1},
    {0: 2, 1: 3, 2: 0.5, 3: 2, 4: 0, 5: 1},
])
def test_roialign(params: dict) -> None:
    """ROIAlign, both versions, aligned or not (a roi inside the map: at its far edge ncnn reads past it)."""
    b = GraphBuilder()
    b.layer("ROIAlign", [b.input("x", (3, 9, 11)), b.input("roi", (4,))], params)
    x = np.random.default_rng(10).standard_normal((3, 9, 11)).astype(np.float32)
    roi = np.array([4.0, 4.0, 36.0, 30.0] if params[2] == 0.25 else [2.0, 2.0, 18.0, 14.0], np.float32)
    compare(b.build(), {"x": x, "roi": roi}, tol=1e-4)
