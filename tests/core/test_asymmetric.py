"""Asymmetric int8 inputs: which layers are shifted, the real runtime computing the shifted model as the
simulation does, the error halving that motivates it, and the refine walk's model of it."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import activation_scale, weight_scales
from ncnnc.core.refine import dequantize_input, fake_quantized, run_op
from ncnnc.core.table import CalibrationTable
from ncnnc.plugins.quantizer import quantize

RNG = np.random.default_rng(21)
CONVS = ("head", "a", "b", "c", "d", "e")


def _conv(b, x, cin, cout, k, act, name):
    w = RNG.standard_normal((cout, cin, k, k)).astype(np.float32) / np.sqrt(cin * k * k)
    return b.layer("Convolution", [x], {0: cout, 1: k, 4: k // 2, 5: 1, 6: w.size, 9: act},
                   {"weight": w, "bias": (0.1 * RNG.standard_normal(cout)).astype(np.float32)}, name=name)


def _model():
    """head (ReLU) -> max pool -> split -> a (1x1, ReLU6) | b (3x3 pad 1, ReLU) -> concat -> c (1x1);
    d (no activation) -> e: e's input may be negative and stays symmetric."""
    b = GraphBuilder()
    x = b.input("data", (6, 16, 16))
    y = _conv(b, x, 6, 16, 3, 1, "head")
    y = b.layer("Pooling", [y], {0: 0, 1: 2, 2: 2}, name="pool")
    s1, s2 = b.layer("Split", [y], outputs=2, name="split")
    ya = _conv(b, s1, 16, 12, 1, 3, "a")
    yb = _conv(b, s2, 16, 12, 3, 1, "b")
    y = b.layer("Concat", [ya, yb], name="concat")
    yc = _conv(b, y, 24, 8, 1, 0, "c")
    yd = _conv(b, yc, 8, 8, 1, 0, "d")
    _conv(b, yd, 8, 4, 1, 0, "e")
    graph = b.build()
    graph.layer("a").params["activation_params"] = [0.0, 6.0]
    return graph


def _data(n=8):
    x = RNG.standard_normal((n, 6, 18, 18)).astype(np.float32)
    return sum(x[:, :, i:i + 16, j:j + 16] for i in range(3) for j in range(3)) / 3


def _table(graph, data):
    layers = [graph.layer(n) for n in CONVS]
    blobs = Interpreter(graph).run({"data": data}, [layer.inputs[0] for layer in layers])
    return CalibrationTable({layer.name: weight_scales(layer, winograd_bits=8) for layer in layers},
                            {layer.name: activation_scale(float(np.abs(blobs[layer.inputs[0]]).max()))
                             for layer in layers})


def test_readers_of_relu_outputs_are_shifted_and_the_runtime_computes_it_as_simulated():
    graph, data = _model(), _data()
    table = _table(graph, data)
    symmetric, asymmetric = quantize(graph, table), quantize(graph, table, asymmetric=True)
    assert sorted(asymmetric.report.asymmetric) == ["a", "b", "c"]  # not head (image input), not e (no ReLU)
    int8 = asymmetric.graph
    assert int8.layer("b").p("pad_left") == 0 and int8.layer("b").inputs[0] != int8.layer("a").inputs[0]
    assert [layer.type for layer in int8.layers].count("Padding") == 1
    assert int8.layer("head").p("activation_type") == 3 and int8.layer("d").p("activation_type") == 0
    offset = -float(int8.layer("a").p("activation_params")[0])
    assert float(int8.layer("a").p("activation_params")[1]) == pytest.approx(6.0 - offset)  # ReLU6: clip(-c, 6-c)
    for result in (symmetric, asymmetric):
        sim = Interpreter(result.graph).run({"data": data}, ["e"])["e"]
        for i in range(3):
            runtime = run_graph(result.graph, {"data": data[i]})["e"]
            np.testing.assert_allclose(runtime, sim[i], rtol=1e-5, atol=1e-5 * float(np.abs(sim[i]).max()))


def test_a_reader_kept_fp32_is_compensated_and_keeps_its_fp32_output():
    """b kept fp32 (as auto mixed precision may): a's input is still shifted, b adds the shift back with its
    weights as stored (fp16) and pads explicitly; b's output is the fp32 model's up to fp16 weights."""
    graph, data = _model(), _data()
    table = _table(graph, data)
    result = quantize(graph, table, fp32_layers={"b"}, asymmetric=True)
    assert "a" in result.report.asymmetric and "b" not in result.report.asymmetric
    int8 = result.graph
    assert int8.layer("b").p("int8_scale_term") == 0 and int8.layer("b").p("pad_left") == 0
    sim = Interpreter(int8).run({"data": data}, ["b", "e"])
    for i in range(2):
        runtime = run_graph(int8, {"data": data[i]})["e"]
        np.testing.assert_allclose(runtime, sim["e"][i], rtol=1e-5, atol=1e-5 * float(np.abs(sim["e"][i]).max()))
    head_int8 = quantize(graph, table, fp32_layers=set(CONVS) - {"head"}).graph  # same int8 head, nothing shifted
    want = Interpreter(head_int8).run({"data": data}, ["b"])["b"]
    got = Interpreter(quantize(graph, table, fp32_layers=set(CONVS) - {"head", "a"}, asymmetric=True).graph).run(
        {"data": data}, ["b"])["b"]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * float(np.abs(want).max()))


def test_shifted_inputs_halve_the_quantization_error_of_their_readers():
    """With only a, b, c int8 (their inputs all after ReLUs), the error of c's output: the input steps are
    half as large, so the squared error drops by well over a third (weights add their own share)."""
    graph, data = _model(), _data()
    table = _table(graph, data)
    want = Interpreter(graph).run({"data": data}, ["c"])["c"]
    errors = []
    for asymmetric in (False, True):
        int8 = quantize(graph, table, fp32_layers={"head", "d", "e"}, asymmetric=asymmetric).graph
        errors.append(float(np.mean((Interpreter(int8).run({"data": data}, ["c"])["c"] - want) ** 2)))
    assert errors[1] < 0.6 * errors[0], errors


def test_the_refine_walk_models_a_shifted_input_as_the_quantizer_writes_it():
    graph, data = _model(), _data()
    table = _table(graph, data)
    others = set(CONVS) - {"c"}
    int8 = quantize(graph, table, fp32_layers=others, asymmetric=True)
    assert int8.report.asymmetric == ["c"]
    run = Interpreter(int8.graph).run({"data": data}, ["c", "concat"])
    offset = float(np.float32(127 / np.float32(2 * table.input_scales["c"])))
    x = run["concat"] + np.float32(offset)  # the producers' shifted output, shifted back
    assert float(run["concat"].min()) == -offset  # a ReLU's zeros sit at -c
    layer, scales = graph.layer("c"), table.weight_scales["c"]
    want = run_op(fake_quantized(layer, scales), [dequantize_input(x, table.input_scales["c"], True)])
    np.testing.assert_allclose(run["c"], want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))
    plain = run_op(fake_quantized(layer, scales), [dequantize_input(x, table.input_scales["c"])])
    assert np.abs(plain - want).mean() > 100 * np.abs(run["c"] - want).mean()  # the symmetric model is not it


def test_the_llvm_backend_runs_the_shifted_model_as_simulated(require_cross):
    """The explicit Padding layers and clip activations the shift writes, through the host JIT, and the
    armv8 object under qemu giving the JIT's outputs bit for bit."""
    from ncnnc.backends.llvm.build import build
    from ncnnc.backends.llvm.jit import jit
    from ncnnc.backends.llvm.native import run_native

    graph, data = _model(), _data()
    int8 = quantize(graph, _table(graph, data), asymmetric=True).graph
    want = Interpreter(int8).run({"data": data}, ["e"])["e"]
    got = jit(int8)({"data": data})["e"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    require_cross()
    native = run_native(build(int8, "armv8"), [{"data": x} for x in data[:3]])
    assert len(native) == 3
    for i, result in enumerate(native):
        np.testing.assert_array_equal(result["e"], got[i])


def test_layers_that_only_move_values_carry_the_shift_to_an_inner_product():
    """conv (ReLU) -> Flatten -> InnerProduct: the classifier reads the shifted values, unpadded."""
    b = GraphBuilder()
    x = b.input("data", (6, 16, 16))
    y = _conv(b, x, 6, 4, 3, 1, "head")
    y = b.layer("Flatten", [y], name="flat")
    w = (RNG.standard_normal((5, 4 * 16 * 16)) / 32).astype(np.float32)
    b.layer("InnerProduct", [y], {0: 5, 1: 1, 2: w.size}, {"weight": w, "bias": np.zeros(5, np.float32)}, name="fc")
    graph, data = b.build(), _data()
    blobs = Interpreter(graph).run({"data": data}, ["data", "flat"])
    table = CalibrationTable({n: weight_scales(graph.layer(n)) for n in ("head", "fc")},
                             {"head": activation_scale(float(np.abs(blobs["data"]).max())),
                              "fc": activation_scale(float(np.abs(blobs["flat"]).max()))})
    result = quantize(graph, table, asymmetric=True)
    assert result.report.asymmetric == ["fc"]
    sim = Interpreter(result.graph).run({"data": data}, ["fc"])["fc"]
    for i in range(2):
        np.testing.assert_allclose(run_graph(result.graph, {"data": data[i]})["fc"], sim[i], rtol=1e-5,
                                   atol=1e-5 * float(np.abs(sim[i]).max()))


def test_mixed_precision_measures_a_shifted_layer_alone_from_the_inputs():
    """Auto mixed precision measures each layer alone in int8 from the fp32 model's blobs at that layer; a layer
    whose input is shifted needs the mixed model's own ``x - c`` there (its fp32 producer lowers its bias), so it
    runs from the inputs.  Fed the fp32 blobs, the bundled SqueezeNet's shifted layers measured output cosines
    of 0.0001 with only that layer int8, and the ranking was noise."""
    from pathlib import Path

    import ncnnc

    example = Path(__file__).resolve().parents[2] / "examples" / "squeezenet"
    result = ncnnc.compile([example / "squeezenet_v1.1.param", example / "squeezenet_v1.1.bin"],
                           calib=sorted((example / "images").iterdir())[:8], mean=[104, 117, 123], norm=[1, 1, 1],
                           shape=[227, 227, 3], asymmetric=True, auto_mixed_precision=True, amp_images=4)
    sensitivity = result.mixed_precision.sensitivity
    assert len(sensitivity) == 26 and min(sensitivity.values()) > 0.98, sensitivity
