"""The quantizer against ncnn2int8's own output and against the real ncnn runtime."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.ncnn_writer import bin_bytes, param_text
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import NcnncError
from ncnnc.core.table import CalibrationTable
from ncnnc.frontends.ncnn import load
from ncnnc.plugins.quantizer import quantize


def _ref(squeezenet_dir, name):
    return squeezenet_dir / "ncnn-reference" / name


@pytest.mark.parametrize("method", ["kl", "aciq"])
def test_same_model_as_ncnn2int8(squeezenet_dir, method):
    graph = load(_ref(squeezenet_dir, "squeezenet_v1.1-opt32.param"), _ref(squeezenet_dir, "squeezenet_v1.1-opt32.bin"))
    table = CalibrationTable.load(_ref(squeezenet_dir, f"squeezenet_v1.1-{method}.table"))
    result = quantize(graph, table)
    want_param = _ref(squeezenet_dir, f"squeezenet_v1.1-int8-{method}.param").read_text()
    want_bin = _ref(squeezenet_dir, f"squeezenet_v1.1-int8-{method}.bin").read_bytes()
    assert param_text(result.graph) == want_param  # -23330 shape hints and param order kept
    assert bin_bytes(result.graph) == want_bin
    assert len(result.report.quantized) == 26 and len(result.report.requantized) == 8
    assert graph.layer("conv1").p("int8_scale_term") == 0  # the input graph is not modified


def _cos(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _conv_net(rng, channels=16):
    """Conv -> Conv (requantize) -> Split -> {ConvDW, Conv} -> Concat -> InnerProduct, random weights."""
    b = GraphBuilder()
    x = b.input("data", (channels, 12, 10))

    def conv(src, cin, n, k, **extra):
        typ = "ConvolutionDepthWise" if "group" in extra else "Convolution"
        params = {"num_output": n, "kernel_w": k, "pad_left": k // 2, "bias_term": 1,
                  "weight_data_size": n * cin // extra.get("group", 1) * k * k, "activation_type": 1, **extra}
        w = rng.normal(0, 0.4, n * cin // extra.get("group", 1) * k * k)
        weights = {"weight": w, "bias": rng.normal(0, 0.2, n)}
        return b.layer(typ, [src], params, weights, name=f"{typ[:6]}{len(b.layers)}")

    c1 = conv(x, channels, 24, 3)
    c2 = conv(c1, 24, 24, 1)
    s1, s2 = b.layer("Split", [c2], outputs=2)
    d = conv(s1, 24, 24, 3, group=24)
    e = conv(s2, 24, 8, 3)
    cat = b.layer("Concat", [d, e])
    b.layer("InnerProduct", [cat], {"num_output": 10, "bias_term": 1, "weight_data_size": 10 * 32 * 12 * 10},
            {"weight": rng.normal(0, 0.02, 10 * 32 * 12 * 10), "bias": rng.normal(0, 0.1, 10)}, name="fc")
    return b.build()


def _table_for(graph, rng, data):
    """A table with absmax weight scales and input scales from one fp32 run of the real runtime."""
    table = CalibrationTable()
    quant = [layer for layer in graph.layers if layer.type in ("Convolution", "ConvolutionDepthWise", "InnerProduct")]
    outs = run_graph(graph, {"data": data}, [layer.inputs[0] for layer in quant])
    for layer in quant:
        rows = layer.p("group") if layer.type == "ConvolutionDepthWise" else layer.p("num_output")
        w = np.abs(layer.weight("weight").reshape(rows, -1)).max(axis=1)
        table.weight_scales[layer.name] = (127 / w).astype(np.float32)
        table.input_scales[layer.name] = float(127 / np.abs(outs[layer.inputs[0]]).max())
    return table


def test_static_layers_in_runtime():
    rng = np.random.default_rng(0)
    graph = _conv_net(rng)
    data = rng.normal(0, 1, (16, 12, 10)).astype(np.float32)
    table = _table_for(graph, rng, data)
    result = quantize(graph, table)
    q = result.graph
    assert [layer.p("int8_scale_term") for layer in q.layers if "int8_scale_term" in layer.params] == \
        [102, 102, 1, 2, 2]
    assert set(result.report.requantized) == {q.layers[1].name, q.layers[2].name}
    # conv -> split -> convs: the top scale is the input scale of the Split's first consumer
    assert q.layers[2].weights["top_int8_scales"].data[0] == np.float32(table.input_scales[q.layers[4].name])
    fp32 = run_graph(graph, {"data": data}, ["fc"])["fc"]
    int8 = run_graph(q, {"data": data}, ["fc"])["fc"]
    assert _cos(fp32, int8) > 0.99
    assert not np.allclose(fp32, int8, atol=1e-5)  # the int8 path really ran


def test_commented_and_fp32_layers_stay_fp32():
    rng = np.random.default_rng(1)
    graph = _conv_net(rng)
    data = rng.normal(0, 1, (16, 12, 10)).astype(np.float32)
    table = _table_for(graph, rng, data)
    text = table.to_text().splitlines()
    second = graph.layers[2].name
    text = [("#" + line if line.split()[0] in (second, f"{second}_param_0") else line) for line in text]
    table = CalibrationTable.parse("\n".join(text))
    result = quantize(graph, table, fp32_layers=["fc"])
    q = result.graph
    assert result.report.kept_fp32 == {second: "commented out in the table", "fc": "asked to stay fp32"}
    assert q.layer(second).p("int8_scale_term") == 0 and q.layer(second).weights["weight"].storage == "fp16"
    assert q.layers[1].p("int8_scale_term") == 2  # no requantize into an fp32 layer
    assert q.layer("fc").weights["weight"].storage == "fp16"
    out = run_graph(q, {"data": data}, ["fc"])["fc"]
    assert _cos(out, run_graph(graph, {"data": data}, ["fc"])["fc"]) > 0.99


def _recurrent(rng, typ, direction=0, hidden=None, num_output=16, size=12, steps=9):
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[typ]
    hidden = hidden or num_output
    b = GraphBuilder()
    x = b.input("data", (steps, size))
    nd = 2 if direction == 2 else 1
    params = {"num_output": num_output, "weight_data_size": nd * hidden * gates * size, "direction": direction}
    if hidden != num_output:
        params["hidden_size"] = hidden
    layer_weights = {"weight_xc": rng.uniform(-0.5, 0.5, nd * hidden * gates * size),
                     "bias_c": rng.uniform(-0.5, 0.5, nd * hidden * (4 if gates > 1 else 1)),
                     "weight_hc": rng.uniform(-0.5, 0.5, nd * hidden * gates * num_output)}
    if hidden != num_output:
        layer_weights["weight_hr"] = rng.uniform(-0.5, 0.5, nd * num_output * hidden)
    b.layer(typ, [x], params, layer_weights, name="rnn")
    return b.build()


@pytest.mark.parametrize("typ,direction,hidden", [("LSTM", 0, None), ("LSTM", 2, None), ("LSTM", 0, 20),
                                                  ("GRU", 2, None), ("RNN", 1, None)])
def test_dynamic_recurrent_in_runtime(typ, direction, hidden):
    rng = np.random.default_rng(2)
    graph = _recurrent(rng, typ, direction, hidden)
    result = quantize(graph)  # no table: weight-only quantization
    layer = result.graph.layer("rnn")
    assert result.report.dynamic == ["rnn"] and layer.p("int8_scale_term") == 2
    assert layer.weights["weight_xc"].storage == "int8" and layer.weights["weight_hc"].storage == "int8"
    assert layer.weights["bias_c"].storage == "fp16"
    data = rng.uniform(-1, 1, (9, 12)).astype(np.float32)
    fp32 = run_graph(graph, {"data": data}, ["rnn"])["rnn"]
    int8 = run_graph(result.graph, {"data": data}, ["rnn"])["rnn"]
    assert int8.shape == fp32.shape
    assert _cos(fp32, int8) > 0.999
    assert np.abs(fp32 - int8).max() < 0.05
    assert not np.allclose(fp32, int8, atol=1e-5)
    # the numpy simulation quantizes the inputs and the hidden state as the runtime does: its int8 output
    # is within float32 rounding of the runtime's (the int8 error is 1e-3 or more)
    simulated = Interpreter(result.graph).run({"data": data[None]}, ["rnn"])["rnn"][0]
    np.testing.assert_allclose(simulated, int8, rtol=0, atol=1e-6)


def test_dynamic_embed_in_runtime():
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("data", (7,))
    b.layer("Embed", [x], {"num_output": 8, "input_dim": 20, "bias_term": 1, "weight_data_size": 160},
            {"weight": rng.normal(0, 1, 160), "bias": rng.normal(0, 1, 8)}, name="embed")
    graph = b.build()
    result = quantize(graph)
    layer = result.graph.layer("embed")
    assert layer.p("int8_scale_term") == 2 and layer.weights["weight"].storage == "int8"
    ids = np.array([0, 3, 19, 7, 7, 12, 1], np.int32).view(np.float32)  # Embed reads int32 indices
    fp32 = run_graph(graph, {"data": ids}, ["embed"])["embed"]
    int8 = run_graph(result.graph, {"data": ids}, ["embed"])["embed"]
    scale = layer.weights["weight_int8_scales"].data[0]
    want = layer.weights["weight"].data.astype(np.float32)[[0, 3, 19, 7, 7, 12, 1]] / scale + layer.weight("bias")
    np.testing.assert_allclose(int8, want, rtol=1e-6, atol=1e-6)
    assert np.abs(int8 - fp32).max() <= 0.5 / scale + 1e-6
    simulated = Interpreter(result.graph).run({"data": ids[None]}, ["embed"])["embed"][0]
    np.testing.assert_array_equal(simulated, int8)


def test_bad_tables(squeezenet_dir):
    graph = load(_ref(squeezenet_dir, "squeezenet_v1.1-opt32.param"), _ref(squeezenet_dir, "squeezenet_v1.1-opt32.bin"))
    table = CalibrationTable.load(_ref(squeezenet_dir, "squeezenet_v1.1-kl.table"))
    missing = CalibrationTable(dict(table.weight_scales), dict(table.input_scales))
    missing.input_scales["conv99"] = 1.0
    with pytest.raises(NcnncError, match="layer conv99: the table names a layer the model does not have"):
        quantize(graph, missing)
    wrong = CalibrationTable(dict(table.weight_scales), dict(table.input_scales))
    wrong.weight_scales["conv1"] = wrong.weight_scales["conv1"][:10]
    with pytest.raises(NcnncError, match="10 weight scales, the Convolution needs 64"):
        quantize(graph, wrong)
    pooling = CalibrationTable(input_scales={"pool1": 1.0})
    with pytest.raises(NcnncError, match="Pooling layer, which has no int8 form"):
        quantize(graph, pooling)
    int8 = quantize(graph, table).graph
    with pytest.raises(NcnncError, match="already an int8 model"):
        quantize(int8, table)
    with pytest.raises(NcnncError, match="model does not have"):
        quantize(graph, table, fp32_layers=["nope"])
