"""Every layer type of the foundation issue: parse/write round trip, and the real runtime loads it."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import param_bin, save
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Weight
from ncnnc.frontends import ncnn as ncnn_frontend
from ncnnc.frontends.ncnn import parse_param_bin

# (type, input shapes (c,h,w), params, number of outputs)
CASES = [
    ("Convolution", [(3, 8, 8)], {0: 4, 1: 3, 11: 2, 3: 2, 4: 1, 5: 1, 6: 4 * 3 * 6, 9: 2, 10: [0.1]}, 1),
    ("ConvolutionDepthWise", [(4, 8, 8)], {0: 4, 1: 3, 5: 1, 6: 4 * 9, 7: 4, 4: -233}, 1),
    ("Deconvolution", [(3, 5, 5)], {0: 2, 1: 3, 3: 2, 5: 1, 6: 2 * 3 * 9, 18: 1}, 1),
    ("DeconvolutionDepthWise", [(4, 5, 5)], {0: 4, 1: 3, 5: 0, 6: 4 * 9, 7: 4}, 1),
    ("InnerProduct", [(3, 4, 4)], {0: 5, 1: 1, 2: 5 * 48, 9: 3, 10: [-1.0, 1.0]}, 1),
    ("Pooling", [(3, 9, 9)], {0: 1, 1: 3, 2: 2, 3: 1, 5: 1}, 1),
    ("ReLU", [(3, 4, 4)], {0: 0.1}, 1),
    ("PReLU", [(3, 4, 4)], {0: 3}, 1),
    ("Clip", [(3, 4, 4)], {0: -1.5, 1: 2.25}, 1),
    ("Sigmoid", [(3, 4, 4)], {}, 1),
    ("TanH", [(3, 4, 4)], {}, 1),
    ("HardSigmoid", [(3, 4, 4)], {0: 0.16666667, 1: 0.5}, 1),
    ("HardSwish", [(3, 4, 4)], {0: 0.16666667, 1: 0.5}, 1),
    ("Swish", [(3, 4, 4)], {}, 1),
    ("Mish", [(3, 4, 4)], {}, 1),
    ("ELU", [(3, 4, 4)], {0: 0.5}, 1),
    ("BatchNorm", [(3, 4, 4)], {0: 3, 1: 1e-5}, 1),
    ("Scale", [(3, 4, 4)], {0: 3, 1: 1}, 1),
    ("Bias", [(3, 4, 4)], {0: 3}, 1),
    ("Eltwise", [(3, 4, 4), (3, 4, 4)], {0: 1, 1: [0.5, -2.0]}, 1),
    ("BinaryOp", [(3, 4, 4), (3, 1, 1)], {0: 2}, 1),
    ("UnaryOp", [(3, 4, 4)], {0: 6}, 1),
    ("Concat", [(3, 4, 4), (2, 4, 4)], {0: 0}, 1),
    ("Split", [(3, 4, 4)], {}, 2),
    ("Slice", [(4, 4, 4)], {0: [1, -233], 1: 0}, 2),
    ("Crop", [(3, 6, 6)], {0: 1, 1: 2, 3: 3, 4: 2}, 1),
    ("Softmax", [(3, 4, 4)], {0: 0, 1: 1}, 1),
    ("Reshape", [(3, 4, 4)], {0: -1}, 1),
    ("Flatten", [(3, 4, 4)], {}, 1),
    ("Permute", [(3, 4, 5)], {0: 3}, 1),
    ("Padding", [(3, 4, 4)], {0: 1, 1: 2, 2: 0, 3: 1, 4: 0, 5: 0.5}, 1),
    ("Interp", [(3, 4, 4)], {0: 2, 1: 2.0, 2: 2.0}, 1),
    ("ShuffleChannel", [(4, 4, 4)], {0: 2}, 1),
    ("Dropout", [(3, 4, 4)], {}, 1),
    ("Noop", [(3, 4, 4)], {}, 1),
    ("MemoryData", [], {0: 4, 1: 4, 2: 3}, 1),
    ("GroupNorm", [(4, 4, 4)], {0: 2, 1: 4, 2: 1e-5}, 1),
    ("InstanceNorm", [(3, 4, 4)], {0: 3, 1: 1e-5}, 1),
    ("LayerNorm", [(3, 4, 8)], {0: 8, 1: 1e-5}, 1),
    ("Quantize", [(3, 4, 4)], {0: 1}, 1),
    ("Dequantize", [(3, 4, 4)], {0: 1, 1: 3}, 1),
    ("Requantize", [(3, 4, 4)], {0: 1, 1: 1, 2: 3}, 1),
    ("Convolution", [(3, 8, 8)], {0: 4, 1: 3, 5: 1, 6: 4 * 3 * 9, 8: 2, 9: 1}, 1),
    ("Convolution", [(3, 8, 8)], {0: 4, 1: 3, 5: 1, 6: 4 * 3 * 9, 8: 102, 9: 1}, 1),
    ("ConvolutionDepthWise", [(4, 8, 8)], {0: 4, 1: 3, 5: 1, 6: 4 * 9, 7: 4, 8: 1}, 1),
    ("InnerProduct", [(3, 4, 4)], {0: 5, 1: 1, 2: 5 * 48, 8: 2}, 1),
]


def _model(layer_type, input_shapes, params, outputs):
    rng = np.random.default_rng(len(layer_type))
    b = GraphBuilder()
    inputs = [b.input(f"in{i}", s) for i, s in enumerate(input_shapes)]
    b.layer(layer_type, inputs, params, outputs=outputs, name="x")
    graph = b.build()
    layer = graph.layers[-1]
    int8 = bool(layer.params.get("int8_scale_term", 0)) if "int8_scale_term" in (
        layer.params.schema.by_name if layer.params.schema else {}) else False
    for spec in layer.weight_specs():
        data = rng.uniform(0.5, 1.5, spec.logical_shape()).astype(np.float32)
        if spec.load_type == 1:
            layer.weights[spec.name] = Weight(data, "raw")
        elif int8 and spec.name == "weight":
            layer.weights[spec.name] = Weight(rng.integers(-127, 128, spec.logical_shape()).astype(np.int8), "int8")
        else:
            layer.weights[spec.name] = Weight(data, "fp32")
    return graph


def _params_equal(a: dict, b: dict) -> bool:
    """Same ids and values, floats compared at float32 precision."""
    if a.keys() != b.keys():
        return False
    return all(np.array_equal(np.float32(a[k]), np.float32(b[k])) for k in a)


def _assert_same(a, b):
    assert [(x.type, x.inputs, x.outputs) for x in a.layers] == [(x.type, x.inputs, x.outputs) for x in b.layers]
    for x, y in zip(a.layers, b.layers):
        assert _params_equal(x.params.values, y.params.values)
        assert x.weights.keys() == y.weights.keys()
        for k in x.weights:
            assert x.weights[k].storage == y.weights[k].storage
            np.testing.assert_array_equal(np.ravel(x.weights[k].data), np.ravel(y.weights[k].data))


@pytest.mark.parametrize(("layer_type", "shapes", "params", "outputs"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_roundtrip_and_runtime_load(tmp_path, layer_type, shapes, params, outputs):
    graph = _model(layer_type, shapes, params, outputs)
    save(graph, tmp_path / "m.param", tmp_path / "m.bin")
    again = ncnn_frontend.load(tmp_path / "m.param", tmp_path / "m.bin")
    _assert_same(graph, again)
    # the binary form keeps types and params (blob names become indices)
    binary = parse_param_bin(param_bin(graph))
    assert [x.type for x in binary.layers] == [x.type for x in graph.layers]
    assert all(_params_equal(x.params.values, y.params.values) for x, y in zip(binary.layers, graph.layers))
    # the real runtime accepts the files (it fails on a .bin shorter than its load_model reads)
    RuntimeNet(tmp_path / "m.param", tmp_path / "m.bin")
    save(graph, tmp_path / "m.param.bin", tmp_path / "m2.bin")
    RuntimeNet(tmp_path / "m.param.bin", tmp_path / "m2.bin")


def test_runtime_rejects_short_bin(tmp_path):
    """The runtime check above can fail: a .bin missing its last weight is refused."""
    graph = _model("Convolution", [(3, 8, 8)], {0: 4, 1: 3, 5: 1, 6: 4 * 3 * 9}, 1)
    save(graph, tmp_path / "m.param", tmp_path / "m.bin")
    data = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "m.bin").write_bytes(data[:-8])
    with pytest.raises(Exception, match="cannot load"):
        RuntimeNet(tmp_path / "m.param", tmp_path / "m.bin")


def test_storages_roundtrip(tmp_path):
    """fp16, int8 and codebook storages read and write back byte for byte."""
    graph = _model("Convolution", [(3, 8, 8)], {0: 4, 1: 3, 5: 1, 6: 4 * 3 * 9}, 1)
    layer = graph.layers[-1]
    w = layer.weights["weight"]
    for storage in ("fp16", "int8", "codebook"):
        if storage == "fp16":
            layer.weights["weight"] = Weight(w.data.astype(np.float16).astype(np.float32), "fp16")
        elif storage == "int8":
            layer.weights["weight"] = Weight(np.arange(w.data.size, dtype=np.int8).reshape(w.data.shape), "int8")
        else:
            table = np.linspace(-1, 1, 256, dtype=np.float32)
            idx = (np.arange(w.data.size) % 256).astype(np.uint8).reshape(w.data.shape)
            layer.weights["weight"] = Weight(table[idx], "codebook", codebook=table, indices=idx, tag=0x0101)
        save(graph, tmp_path / "m.param", tmp_path / "m.bin")
        again = ncnn_frontend.load(tmp_path / "m.param", tmp_path / "m.bin")
        assert again.layers[-1].weights["weight"].storage == storage
        save(again, tmp_path / "n.param", tmp_path / "n.bin")
        assert (tmp_path / "n.bin").read_bytes() == (tmp_path / "m.bin").read_bytes()
        if storage != "int8":
            x = np.random.default_rng(1).standard_normal((3, 8, 8)).astype(np.float32)
            a = RuntimeNet(tmp_path / "m.param", tmp_path / "m.bin").run({"in0": x}, ["x"])["x"]
            ref_graph = graph.copy()
            ref_graph.layers[-1].weights["weight"] = Weight(layer.weights["weight"].as_float(), "fp32")
            save(ref_graph, tmp_path / "r.param", tmp_path / "r.bin")
            b = RuntimeNet(tmp_path / "r.param", tmp_path / "r.bin").run({"in0": x}, ["x"])["x"]
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_untagged_raw_fp32_weights(tmp_path):
    """A load-type-0 blob with no tag bytes at all is not valid; raw fp32 (zero tag) is read as fp32."""
    graph = _model("InnerProduct", [(8,)], {0: 2, 1: 0, 2: 16}, 1)
    save(graph, tmp_path / "m.param", tmp_path / "m.bin")
    raw = (tmp_path / "m.bin").read_bytes()
    assert raw[:4] == b"\0\0\0\0" and len(raw) == 4 + 16 * 4
