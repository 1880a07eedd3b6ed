"""Shape inference agrees with the shapes the real ncnn runtime produces."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Weight
from ncnnc.core.shapes import infer_shapes
from ncnnc.frontends import ncnn as ncnn_frontend


def _with_weights(graph):
    rng = np.random.default_rng(0)
    for layer in graph.layers:
        for spec in layer.weight_specs():
            if spec.name not in layer.weights:
                data = rng.uniform(-1, 1, spec.logical_shape()).astype(np.float32)
                layer.weights[spec.name] = Weight(data, "raw" if spec.load_type == 1 else "fp32")
    return graph


def _check(graph, input_shapes):
    _with_weights(graph)
    shapes = infer_shapes(graph)
    inputs = {name: np.random.default_rng(1).uniform(-1, 1, s).astype(np.float32)
              for name, s in input_shapes.items()}
    blobs = [b for b in graph.blobs if b not in inputs]
    got = run_graph(graph, inputs, blobs)
    for b in blobs:
        assert shapes[b] == got[b].shape, b


def _single(layer_type, shape, params, outputs=1, extra_inputs=()):
    b = GraphBuilder()
    x = b.input("in0", shape)
    more = [b.input(f"in{i + 1}", s) for i, s in enumerate(extra_inputs)]
    b.layer(layer_type, [x, *more], params, outputs=outputs, name="y")
    return b.build(), {"in0": shape, **{f"in{i + 1}": s for i, s in enumerate(extra_inputs)}}


@pytest.mark.parametrize(("k", "s", "d", "pad"), list(itertools.product([1, 3], [1, 2], [1, 2], [0, 1, -233, -234])))
def test_convolution(k, s, d, pad):
    _check(*_single("Convolution", (3, 11, 10), {0: 4, 1: k, 2: d, 3: s, 4: pad, 6: 4 * 3 * k * k}))


@pytest.mark.parametrize(("k", "s", "pad", "mode"), list(itertools.product([2, 3], [1, 2], [0, 1], [0, 1, 2, 3])))
def test_pooling(k, s, pad, mode):
    _check(*_single("Pooling", (3, 11, 10), {0: 0, 1: k, 2: s, 3: pad, 5: mode}))


@pytest.mark.parametrize(("k", "s", "pad", "out_pad"),
                         [c for c in itertools.product([2, 3], [1, 2], [0, 1], [0, 1]) if c[3] < c[1]])
def test_deconvolution(k, s, pad, out_pad):
    _check(*_single("Deconvolution", (3, 5, 6), {0: 2, 1: k, 3: s, 4: pad, 18: out_pad, 6: 2 * 3 * k * k}))


@pytest.mark.parametrize(("layer_type", "shape", "params", "outputs"), [
    ("Pooling", (3, 7, 7), {0: 1, 4: 1}, 1),
    ("Pooling", (3, 7, 9), {0: 1, 7: 1, 8: 3, 18: 2}, 1),
    ("InnerProduct", (3, 4, 4), {0: 5, 2: 5 * 48}, 1),
    ("Flatten", (3, 4, 5), {}, 1),
    ("Reshape", (3, 4, 4), {0: -1}, 1),
    ("Reshape", (3, 4, 4), {0: 8, 1: -1}, 1),
    ("Reshape", (3, 4, 4), {0: 4, 1: 2, 2: -1}, 1),
    ("Reshape", (3, 4, 4), {0: 0, 1: 0, 2: 3}, 1),
    ("Permute", (3, 4, 5), {0: 1}, 1),
    ("Permute", (3, 4, 5), {0: 2}, 1),
    ("Permute", (3, 4, 5), {0: 3}, 1),
    ("Permute", (3, 4, 5), {0: 4}, 1),
    ("Permute", (3, 4, 5), {0: 5}, 1),
    ("Padding", (3, 4, 5), {0: 1, 1: 2, 2: 3, 3: 0}, 1),
    ("Interp", (3, 4, 5), {0: 1, 1: 2.0, 2: 3.0}, 1),
    ("Interp", (3, 4, 5), {0: 2, 3: 7, 4: 9}, 1),
    ("Crop", (3, 8, 9), {0: 1, 1: 2, 3: 4, 4: 3, 5: -233}, 1),
    ("Crop", (3, 8, 9), {0: 1, 1: 2, 2: 1, 3: -233, 4: -233, 5: -233, 6: 1, 7: 1, 8: 1}, 1),
    ("Crop", (3, 8, 9), {9: [1, 2], 10: [5, 8], 11: [1, 2]}, 1),
    ("Slice", (5, 4, 4), {0: [2, -233], 1: 0}, 2),
    ("Slice", (3, 4, 6), {0: [-233, -233, -233], 1: 2}, 3),
    ("Slice", (3, 6, 4), {0: [1, 5], 1: -2}, 2),
    ("Concat", (3, 4, 4), {0: 0}, 1),
    ("Softmax", (3, 4, 4), {0: 1, 1: 1}, 1),
    ("Split", (3, 4, 4), {}, 3),
    ("ShuffleChannel", (4, 2, 2), {0: 2}, 1),
    ("Reduction", (3, 4, 5), {0: 3, 1: 0, 3: [1], 4: 1, 5: 1}, 1),
    ("Reduction", (3, 4, 5), {0: 0, 1: 0, 3: [0, 2], 4: 0, 5: 1}, 1),
])
def test_other_layers(layer_type, shape, params, outputs):
    extra = [shape] if layer_type == "Concat" else []
    _check(*_single(layer_type, shape, params, outputs, extra))


@pytest.mark.parametrize(("a", "b"), [((3, 4, 5), (3, 1, 1)), ((3, 4, 5), (3,)), ((3, 4, 5), (1,)),
                                      ((3, 4, 5), (5,)), ((4, 5), (5,)), ((4, 5), (4, 1))])
def test_binaryop_broadcast(a, b):
    _check(*_single("BinaryOp", a, {0: 0}, extra_inputs=[b]))


def test_squeezenet_every_blob(squeezenet_dir):
    graph = ncnn_frontend.load(squeezenet_dir / "squeezenet_v1.1.param", squeezenet_dir / "squeezenet_v1.1.bin")
    _check(graph, {"data": (3, 227, 227)})


@pytest.mark.parametrize(("layer_type", "shape", "params"), [
    ("Convolution", (6,), {0: 4, 1: 1, 6: 24}),
    ("Convolution", (6,), {0: 4, 1: 3, 11: 1, 6: 12}),
    ("Pooling", (7,), {0: 1, 1: 3, 11: 1, 3: 1}),
    ("Reduction", (7,), {0: 0, 1: 0, 3: [], 5: 1}),
    ("Reduction", (2, 3, 4, 5), {0: 0, 1: 0, 3: [1, 3], 5: 1}),
    ("Crop", (2, 4, 5, 6), {0: 1, 1: 1, 13: 1, 2: 1, 3: 2, 4: 2, 14: 2, 5: 1}),
    ("Crop", (2, 4, 5, 6), {9: [1, -3], 10: [2, -1], 11: [-3, 1]}),
    ("Padding", (2, 4, 5, 6), {0: 1, 1: 2, 7: 1, 8: 2}),
    ("Permute", (2, 4, 5, 6), {0: 10}),
    ("Permute", (2, 4, 5, 6), {0: 23}),
])
def test_unusual_ranks_match_the_numpy_backend(layer_type, shape, params):
    """Cases where the runtime itself misbehaves or crashes; the numpy backend (checked against the
    runtime wherever the runtime is sound) is the reference."""
    from ncnnc.backends.numpy import Interpreter

    graph, _ = _single(layer_type, shape, params)
    _with_weights(graph)
    infer_shapes(graph)
    out = Interpreter(graph).run({"in0": np.zeros((1, *shape), np.float32)})["y"]
    assert graph.shapes["y"] == out.shape[1:]


@pytest.mark.parametrize("layer_type, shape, params, blamed", [
    ("Pooling", (3, 8, 8), {"kernel_w": 9, "kernel_h": 9, "pad_mode": 1}, "its 9x9 window (w x h)"),
    ("Convolution", (3, 8, 8), {"num_output": 2, "kernel_w": 3, "kernel_h": 11}, "its 3x11 window (w x h)"),
    ("Pooling1D", (4, 10), {"kernel_w": 20, "pad_mode": 1}, "its 20 window"),
    ("Pooling3D", (2, 5, 6, 7), {"kernel_w": 2, "kernel_h": 9, "kernel_d": 2, "pad_mode": 1}, "its 2x9x2 window"),
    ("Convolution1D", (4, 10), {"num_output": 2, "kernel_w": 4, "dilation_w": 4}, "its 13 window"),
])
def test_a_window_larger_than_its_input_is_an_error(layer_type, shape, params, blamed):
    """The ncnn runtime cannot extract such a layer's output; inference used to return negative sizes."""
    from ncnnc.core.shapes import WindowError

    b = GraphBuilder()
    b.layer(layer_type, [b.input("data", shape)], params)
    with pytest.raises(WindowError, match=re.escape(f"{blamed} is larger than its padded input")):
        infer_shapes(_with_weights(b.build()))
