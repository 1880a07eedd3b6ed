"""Caffe frontend structure: caffe2ncnn's blob naming, the legacy V1 form, net inputs, phase rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.core.frontend import load_model
from ncnnc.frontends.caffe_reader import caffe_pb, load

RNG = np.random.default_rng(3)


def _write(tmp_path: Path, prototxt: str, blobs: dict[str, list[np.ndarray]], v1: bool = False,
           legacy_dims: bool = False) -> tuple[Path, Path]:
    model = caffe_pb()["NetParameter"]()
    for name, arrays in blobs.items():
        layer = model.layers.add() if v1 else model.layer.add()
        layer.name = name
        for a in arrays:
            bp = layer.blobs.add()
            if legacy_dims:
                bp.num, bp.channels, bp.height, bp.width = [1] * (4 - a.ndim) + list(a.shape)
            else:
                bp.shape.dim.extend(a.shape)
            bp.data.extend(a.ravel().tolist())
    if not blobs:
        model.layer.add().name = "weightless"
    (tmp_path / "m.prototxt").write_text(prototxt)
    (tmp_path / "m.caffemodel").write_bytes(model.SerializeToString())
    return tmp_path / "m.prototxt", tmp_path / "m.caffemodel"


INPLACE_FANOUT = """
name: "fanout"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 5 dim: 5 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "drop1" type: "Dropout" bottom: "conv1" top: "conv1" }
layer { name: "a" type: "Sigmoid" bottom: "conv1" top: "a" }
layer { name: "b" type: "TanH" bottom: "conv1" top: "b" }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" bottom: "data" top: "sum"
        eltwise_param { coeff: 1 coeff: 1 coeff: 0 } }
layer { name: "sum2" type: "Eltwise" bottom: "sum" bottom: "data" top: "out" eltwise_param { operation: MAX } }
"""


def test_inplace_layers_and_fanout_are_named_as_caffe2ncnn_names_them(tmp_path: Path) -> None:
    w, b = RNG.standard_normal((3, 3, 1, 1)).astype(np.float32), RNG.standard_normal(3).astype(np.float32)
    graph = load(*_write(tmp_path, INPLACE_FANOUT, {"conv1": [w, b]}))
    wiring = [(layer.type, layer.name, layer.inputs, layer.outputs) for layer in graph]
    assert wiring == [
        ("Input", "data", [], ["data"]),
        ("Split", "splitncnn_0", ["data"], ["data_splitncnn_0", "data_splitncnn_1", "data_splitncnn_2"]),
        ("Convolution", "conv1", ["data_splitncnn_2"], ["conv1"]),
        ("ReLU", "relu1", ["conv1"], ["conv1_relu1"]),
        ("Dropout", "drop1", ["conv1_relu1"], ["conv1_drop1"]),
        ("Split", "splitncnn_1", ["conv1_drop1"], ["conv1_drop1_splitncnn_0", "conv1_drop1_splitncnn_1"]),
        ("Sigmoid", "a", ["conv1_drop1_splitncnn_1"], ["a"]),
        ("TanH", "b", ["conv1_drop1_splitncnn_0"], ["b"]),
        ("Eltwise", "sum", ["a", "b", "data_splitncnn_1"], ["sum"]),
        ("Eltwise", "sum2", ["sum", "data_splitncnn_0"], ["out"]),
    ]
    assert graph.inputs == ["data"] and graph.outputs == ["out"]
    x = RNG.standard_normal((3, 5, 5)).astype(np.float32)
    conv = np.maximum(np.einsum("oc,chw->ohw", w[:, :, 0, 0], x) + b[:, None, None], 0)
    want = np.maximum(1 / (1 + np.exp(-conv)) + np.tanh(conv), x)
    np.testing.assert_allclose(run_graph(graph, {"data": x}, ["out"])["out"], want, rtol=1e-5, atol=1e-6)


V1_NET = """
name: "legacy"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
         blobs_lr: 1 blobs_lr: 2 convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
layers { name: "acc" type: ACCURACY bottom: "prob" top: "acc" include { phase: TRAIN } }
"""


def test_legacy_v1_layers_with_legacy_blob_dims_and_input_dim(tmp_path: Path) -> None:
    wc, bc = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    wf, bf = RNG.standard_normal((5, 16)).astype(np.float32), RNG.standard_normal(5).astype(np.float32)
    graph = load(*_write(tmp_path, V1_NET, {"conv": [wc, bc], "fc": [wf, bf]}, v1=True, legacy_dims=True))
    assert [layer.type for layer in graph] == ["Input", "Convolution", "ReLU", "Pooling", "InnerProduct", "Softmax"]
    assert graph.layer("data").params.values == {0: 8, 1: 8, 2: 3}
    assert graph.inputs == ["data"] and graph.outputs == ["prob"]
    x = RNG.standard_normal((3, 8, 8)).astype(np.float32)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    conv = np.stack([sum((wc[o, :, i, j, None, None] * xp[:, i:i + 8:2, j:j + 8:2]).sum(0)
                          for i in range(3) for j in range(3)) + bc[o] for o in range(4)])
    pool = np.maximum(conv, 0).reshape(4, 2, 2, 2, 2).max((2, 4))
    logits = wf @ pool.ravel() + bf
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(run_graph(graph, {"data": x}, ["prob"])["prob"], want, rtol=1e-4, atol=1e-6)


def test_net_inputs_in_every_form(tmp_path: Path) -> None:
    prototxt = """
input: "legacy"
input_shape { dim: 1 dim: 2 dim: 3 dim: 4 }
layer { name: "train" type: "Data" top: "x" top: "label" include { phase: TRAIN } }
layer { name: "test" type: "Data" top: "x" top: "label" transform_param { crop_size: 7 } include { phase: TEST } }
layer { name: "mem" type: "MemoryData" top: "m" top: "mlabel" memory_data_param { channels: 3 height: 6 width: 5 } }
layer { name: "dummy" type: "DummyData" top: "d" dummy_data_param { shape { dim: 1 dim: 4 dim: 2 } } }
layer { name: "in" type: "Input" top: "i" input_param { shape { dim: 1 dim: 1 dim: 9 dim: 9 } } }
layer { name: "gone" type: "ReLU" bottom: "x" top: "x" exclude { phase: TEST } }
layer { name: "r1" type: "ReLU" bottom: "x" top: "y" }
"""
    graph = load(*_write(tmp_path, prototxt, {}))
    params = {layer.name: layer.params.values for layer in graph if layer.type == "Input"}
    assert params == {"legacy": {0: 4, 1: 3, 2: 2}, "test": {0: 7, 1: 7}, "mem": {0: 5, 1: 6, 2: 3},
                      "dummy": {0: 2, 1: 4}, "in": {0: 9, 1: 9, 2: 1}}
    assert graph.inputs == ["legacy", "x", "m", "d", "i"]
    assert [layer.name for layer in graph if layer.type == "ReLU"] == ["r1"]


def test_shape_option_sets_the_first_input(tmp_path: Path) -> None:
    net = V1_NET.split("layers")[0] + 'layers { name: "r" type: TANH bottom: "data" top: "t" }'
    prototxt, caffemodel = _write(tmp_path, net, {})
    graph = load_model([str(caffemodel), str(prototxt)], shape="[16,16,3]")
    assert graph.layer("data").params.values == {0: 16, 1: 16, 2: 3}
