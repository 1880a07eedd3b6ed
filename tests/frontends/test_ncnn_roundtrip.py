"""Reading then writing the shared ncnn models: byte-identical .bin, bit-identical runtime outputs."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import bin_bytes, save
from ncnnc.frontends import ncnn as ncnn_frontend

MODELS = [
    "squeezenet_v1.1",
    "squeezenet_v1.1-opt",
    "ncnn-reference/squeezenet_v1.1-opt32",
    "ncnn-reference/squeezenet_v1.1-int8-kl",
    "ncnn-reference/squeezenet_v1.1-int8-aciq",
]


@pytest.mark.parametrize("model", MODELS)
def test_bin_is_byte_identical(squeezenet_dir, model):
    graph = ncnn_frontend.load(squeezenet_dir / f"{model}.param", squeezenet_dir / f"{model}.bin")
    assert bin_bytes(graph) == (squeezenet_dir / f"{model}.bin").read_bytes()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("binary_param", [False, True])
def test_rewritten_model_runs_bit_identically(squeezenet_dir, tmp_path, model, binary_param):
    graph = ncnn_frontend.load(squeezenet_dir / f"{model}.param", squeezenet_dir / f"{model}.bin")
    param = tmp_path / ("m.param.bin" if binary_param else "m.param")
    save(graph, param, tmp_path / "m.bin")
    x = np.random.default_rng(0).uniform(-120, 150, (3, 227, 227)).astype(np.float32)
    blobs = ["prob"] if binary_param else ["prob", graph.layers[5].outputs[0]]
    ref = RuntimeNet(squeezenet_dir / f"{model}.param", squeezenet_dir / f"{model}.bin").run({"data": x}, blobs)
    if binary_param:
        # ncnn2mem's form names blobs by index: the output is the last blob.
        reread = ncnn_frontend.load(param, tmp_path / "m.bin")
        assert [layer.type for layer in reread.layers] == [layer.type for layer in graph.layers]
        last = len(graph.blobs) - 1
        got = {"prob": RuntimeNet(param, tmp_path / "m.bin").run({0: x}, [last])[last]}
    else:
        got = RuntimeNet(param, tmp_path / "m.bin").run({"data": x}, blobs)
    for b in blobs:
        np.testing.assert_array_equal(got[b], ref[b])


def test_reread_graph_equals_original(squeezenet_dir, tmp_path):
    graph = ncnn_frontend.load(squeezenet_dir / "squeezenet_v1.1-opt.param", squeezenet_dir / "squeezenet_v1.1-opt.bin")
    save(graph, tmp_path / "m.param", tmp_path / "m.bin")
    again = ncnn_frontend.load(tmp_path / "m.param", tmp_path / "m.bin")
    for a, b in zip(graph.layers, again.layers):
        assert (a.type, a.name, a.inputs, a.outputs) == (b.type, b.name, b.inputs, b.outputs)
        assert a.params == b.params
        assert a.weights.keys() == b.weights.keys()
        for k in a.weights:
            assert a.weights[k].storage == b.weights[k].storage
            np.testing.assert_array_equal(a.weights[k].data, b.weights[k].data)
