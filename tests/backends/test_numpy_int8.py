"""The numpy backend's int8 simulation against the real ncnn runtime's int8 kernels."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet, run_graph
from ncnnc.backends.numpy.cpu_family import host_family
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.int8 import float2int8
from ncnnc.core.ir import Weight
from ncnnc.core.table import CalibrationTable
from ncnnc.frontends.ncnn import load
from ncnnc.plugins.quantizer import quantize


def test_float2int8_rounds_half_away_and_saturates():
    x = np.array([0.5, -0.5, 1.49, 2.5, -2.5, 126.6, 300, -300, -127.4, 0.0], np.float32)
    assert float2int8(x).tolist() == [1, -1, 1, 3, -3, 127, 127, -127, -127, 0]


def _quantized_chain(rng, dw_channels):
    """Conv(requantize) -> Split -> {ConvDW(requantize) -> Conv, Conv} -> Concat -> InnerProduct."""
    b = GraphBuilder()
    x = b.input("data", (8, 11, 9))

    def conv(src, cin, n, k, stride=1, group=1, act=1):
        typ = "ConvolutionDepthWise" if group > 1 else "Convolution"
        size = n * cin // group * k * k
        params = {"num_output": n, "kernel_w": k, "stride_w": stride, "pad_left": k // 2, "bias_term": 1,
                  "weight_data_size": size, "activation_type": act}
        if group > 1:
            params["group"] = group
        weights = {"weight": rng.normal(0, 0.3, size), "bias": rng.normal(0, 0.3, n)}
        return b.layer(typ, [src], params, weights, name=f"l{len(b.layers)}")

    c = dw_channels
    a = conv(x, 8, c, 3)
    s1, s2 = b.layer("Split", [a], outputs=2)
    d = conv(conv(s1, c, c, 3, stride=2, group=c), c, 6, 1, act=0)
    e = conv(s2, c, 6, 3, stride=2, act=2)
    b.layers[-1].params["activation_params"] = [0.1]
    cat = b.layer("Concat", [d, e])
    b.layer("InnerProduct", [cat], {"num_output": 5, "bias_term": 1, "weight_data_size": 5 * 12 * 6 * 5},
            {"weight": rng.normal(0, 0.05, 5 * 12 * 6 * 5), "bias": rng.normal(0, 0.1, 5)}, name="fc")
    graph = b.build()
    data = rng.normal(0, 1, (8, 11, 9)).astype(np.float32)
    quant = [layer for layer in graph.layers if layer.type in ("Convolution", "ConvolutionDepthWise", "InnerProduct")]
    blobs = run_graph(graph, {"data": data}, [layer.inputs[0] for layer in quant])
    table = CalibrationTable()
    for layer in quant:
        rows = layer.p("group") if layer.type == "ConvolutionDepthWise" else layer.p("num_output")
        table.weight_scales[layer.name] = (127 / np.abs(layer.weight("weight").reshape(rows, -1)).max(1)).astype(
            np.float32)
        table.input_scales[layer.name] = float(100 / np.abs(blobs[layer.inputs[0]]).max())
    return quantize(graph, table).graph


def _compare(graph, rng, batch=4, family=None):
    blobs = [layer.outputs[0] for layer in graph.layers if layer.type != "Input"]
    data = rng.normal(0, 1.5, (batch, 8, 11, 9)).astype(np.float32)
    sim = Interpreter(graph, family).run({"data": data}, blobs)
    diffs = {}
    for i in range(batch):
        real = run_graph(graph, {"data": data[i]}, blobs)
        for blob in blobs:
            diffs[blob] = max(diffs.get(blob, 0.0), float(np.abs(sim[blob][i].astype(np.float32) - real[blob]).max()))
    return sim, diffs


def test_int8_chain_matches_runtime_exactly():
    """12 depthwise channels: ncnn's unpacked kernels, which compute exactly like the simulation."""
    rng = np.random.default_rng(4)
    graph = _quantized_chain(rng, 12)
    terms = [layer.p("int8_scale_term") for layer in graph.layers if "int8_scale_term" in layer.params]
    assert terms == [102, 101, 2, 2, 2]
    sim, diffs = _compare(graph, rng)
    assert sim["l1"].dtype == np.int8 and sim["l3"].dtype == np.int8  # requantized blobs stay int8
    assert max(diffs.values()) < 1e-5, diffs


def _depthwise_only(rng, channels: int):
    """One int8 depthwise convolution with a bias and a float (dequantized) output."""
    b = GraphBuilder()
    x = b.input("data", (channels, 23, 19))
    size = channels * 9
    b.layer("ConvolutionDepthWise", [x], {"num_output": channels, "kernel_w": 3, "pad_left": 1, "bias_term": 1,
                                          "weight_data_size": size, "group": channels},
            {"weight": rng.normal(0, 0.3, size), "bias": rng.normal(0, 0.3, channels)}, name="dw")
    graph = b.build()
    table = CalibrationTable()
    weight = graph.layer("dw").weight("weight").reshape(channels, 9)
    table.weight_scales["dw"] = (127 / np.abs(weight).max(1)).astype(np.float32)
    table.input_scales["dw"] = 40.0
    return quantize(graph, table).graph


@pytest.mark.skipif(host_family() != "x86", reason="the reciprocal estimate is ncnn's x86 kernel")
def test_int8_depthwise_pack8_matches_runtime_exactly():
    """16 depthwise channels run ncnn's x86 pack-8 kernel, which dequantizes with the CPU's reciprocal
    estimate (``rcpps``, about 1e-4 relative) and adds the bias after the multiplication (two roundings):
    the simulation computes the same and equals the runtime, its float outputs bit for bit; with the
    division and the fused multiply-add of the arm kernels instead, requantized values land one int8
    step away and float ones one bit."""
    graph = _quantized_chain(np.random.default_rng(5), 16)
    sim, diffs = _compare(graph, np.random.default_rng(7), batch=8)
    assert max(diffs.values()) < 1e-5, diffs
    divided, diffs = _compare(graph, np.random.default_rng(7), batch=8, family="arm")
    assert diffs["l3"] == 1 and np.count_nonzero(divided["l3"] != sim["l3"]) > 0
    dw = _depthwise_only(np.random.default_rng(8), 16)
    x = np.random.default_rng(9).normal(0, 1, (16, 23, 19)).astype(np.float32)
    real = run_graph(dw, {"data": x}, ["dw"])["dw"]
    np.testing.assert_array_equal(Interpreter(dw).run({"data": x[None]})["dw"][0], real)
    assert np.count_nonzero(Interpreter(dw, "arm").run({"data": x[None]})["dw"][0] != real) > 0


def test_quantize_dequantize_requantize_layers():
    rng = np.random.default_rng(6)
    b = GraphBuilder()
    x = b.input("data", (3, 4, 5))
    b.layer("Quantize", [x], {"scale_data_size": 1}, {"scale": [9.7]}, name="q")
    quant = b.build()
    data = rng.normal(0, 5, (3, 4, 5)).astype(np.float32)
    sim = Interpreter(quant).run({"data": data[None]}, ["q"])["q"][0]
    assert sim.dtype == np.int8
    np.testing.assert_array_equal(sim.astype(np.float32), run_graph(quant, {"data": data}, ["q"])["q"])

    ints = rng.integers(-20000, 20000, (3, 4, 5)).astype(np.int32)
    for layer_type, params, weights in [
        ("Dequantize", {"scale_data_size": 3, "bias_data_size": 3}, {"scale": [0.01, 0.02, 0.003], "bias": [1, -2, 3]}),
        ("Requantize", {"scale_in_data_size": 1, "scale_out_data_size": 1, "bias_data_size": 3, 3: 1},
         {"scale_in": [0.001], "scale_out": [12.0], "bias": [0.5, -0.5, 1.0]}),
    ]:
        b = GraphBuilder()
        x = b.input("data", (3, 4, 5))
        b.layer(layer_type, [x], params, {k: Weight(np.asarray(v, np.float32), "raw") for k, v in weights.items()},
                name="out")
        graph = b.build()
        real = run_graph(graph, {"data": ints.view(np.float32)}, ["out"])["out"]  # ncnn reads the bits as int32
        op = Interpreter(graph).ops["out"]
        np.testing.assert_allclose(op.run(ints[None])[0].astype(np.float32), real, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def squeezenet_inputs(image_paths):
    ncnn = pytest.importorskip("ncnn")
    from PIL import Image

    arrays = []
    for path in image_paths[100:108]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        mat = ncnn.Mat.from_pixels_resize(rgb, ncnn.Mat.PixelType.PIXEL_RGB2BGR, rgb.shape[1], rgb.shape[0], 227, 227)
        mat.substract_mean_normalize([104.0, 117.0, 123.0], [])
        arrays.append(np.array(mat, copy=True))
    return np.stack(arrays)


def test_squeezenet_int8_matches_runtime(squeezenet_dir, squeezenet_inputs):
    ref = squeezenet_dir / "ncnn-reference"
    graph = load(ref / "squeezenet_v1.1-int8-kl.param", ref / "squeezenet_v1.1-int8-kl.bin")
    sim = Interpreter(graph).run({"data": squeezenet_inputs}, ["prob"])["prob"].reshape(len(squeezenet_inputs), -1)
    net = RuntimeNet(ref / "squeezenet_v1.1-int8-kl.param", ref / "squeezenet_v1.1-int8-kl.bin")
    real = np.stack([net.run({"data": x}, ["prob"])["prob"].ravel() for x in squeezenet_inputs])
    assert (sim.argmax(1) == real.argmax(1)).all()
    assert np.abs(sim - real).max() < 1e-4
