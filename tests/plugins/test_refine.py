"""Equalization, bias correction and learned rounding on small synthetic models where the effect is known,
and ``compile --quality high`` end to end: every model loads in the real ncnn runtime, whose int8 output
the numpy int8 simulation reproduces."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet, run_graph
from ncnnc.backends.ncnn_writer import save
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import activation_scale, weight_scales
from ncnnc.core.cli import main
from ncnnc.core.passes import PassManager
from ncnnc.core.refine import find_refiner, refine_graph
from ncnnc.core.table import CalibrationTable
from ncnnc.frontends.ncnn import load
from ncnnc.plugins.passes.equalize import EqualizePass
from ncnnc.plugins.quantizer import quantize

RNG = np.random.default_rng(15)


def _conv(b, x, cin, cout, k=1, act=0, name=None, spread=1.0, dw=False, rng=RNG):
    """A convolution whose output channels have weight ranges spread over ``spread``x."""
    per = 1 if dw else cin
    w = rng.standard_normal((cout, per, k, k)).astype(np.float32)
    w *= np.exp(rng.uniform(-np.log(spread), np.log(spread), cout)).astype(np.float32)[:, None, None, None]
    params = {0: cout, 1: k, 4: k // 2, 5: 1, 6: w.size, 9: act}
    if dw:
        params[7] = cout
    return b.layer("ConvolutionDepthWise" if dw else "Convolution", [x], params,
                   {"weight": w, "bias": rng.standard_normal(cout).astype(np.float32)}, name=name)


def _smooth(n, c, h, w, relu=True, rng=RNG):
    """Spatially correlated inputs (box-filtered noise): rounding choices interact, nearest is not optimal."""
    x = rng.standard_normal((n, c, h + 2, w + 2)).astype(np.float32)
    x = sum(x[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 3 + 0.5
    return np.maximum(x, 0) if relu else x


def _table(graph, data):
    """absmax activation scales from the fp32 inputs of every conv, ncnn2table's weight scales."""
    names = [layer for layer in graph.layers if layer.type in ("Convolution", "ConvolutionDepthWise")]
    blobs = Interpreter(graph).run({"data": data}, [layer.inputs[0] for layer in names])
    return CalibrationTable({layer.name: weight_scales(layer) for layer in names},
                            {layer.name: activation_scale(float(np.abs(blobs[layer.inputs[0]]).max()))
                             for layer in names})


# -- equalization ------------------------------------------------------------------------------------------
def _equalize_model():
    b = GraphBuilder()
    x = b.input("data", (4, 12, 12))
    y = _conv(b, x, 4, 8, 3, act=1, name="a", spread=30)
    y = b.layer("Pooling", [y], {0: 0, 1: 2, 2: 2}, name="pool")
    y = _conv(b, y, 8, 6, 1, act=1, name="b", spread=30)
    s1, s2 = b.layer("Split", [y], outputs=2, name="split")
    c1 = _conv(b, s1, 6, 5, 1, act=0, name="c1")
    c2 = _conv(b, s2, 6, 5, 3, act=0, name="c2")
    d = _conv(b, c2, 5, 5, 3, act=3, name="d", dw=True)  # ReLU6: not equalized through
    e = _conv(b, d, 5, 4, 1, name="e")
    b.layer("Concat", [c1, e], name="out")
    graph = b.build()
    graph.layer("d").params["activation_params"] = [0.0, 6.0]
    return graph


def test_equalization_equalizes_ranges_and_is_an_fp32_identity_in_the_runtime():
    graph = _equalize_model()
    before = graph.copy()
    report = PassManager([EqualizePass()], only=["equalize"]).run(graph)
    changed = {c.split(" -> ")[0] for _, c in report.changes}
    assert changed == {"a", "b"}  # not d (ReLU6), not c1/c2/e (no plain-conv consumers only)
    for producer, consumers in (("a", ["b"]), ("b", ["c1", "c2"])):
        p = graph.layer(producer)
        n = p.p("num_output")
        r1 = np.abs(p.weight("weight").reshape(n, -1)).max(axis=1)
        r2 = np.max([np.abs(graph.layer(c).weight("weight")).reshape(graph.layer(c).p("num_output"), n, -1)
                     .max(axis=(0, 2)) for c in consumers], axis=0)
        np.testing.assert_allclose(r1, r2, rtol=5e-3)  # equal up to the pass's settling tolerance
        old = np.abs(before.layer(producer).weight("weight").reshape(n, -1)).max(axis=1)
        assert np.ptp(np.log(r1)) < np.ptp(np.log(old))  # the ranges moved toward each other
    np.testing.assert_array_equal(graph.layer("d").weight("weight"), before.layer("d").weight("weight"))
    x = RNG.standard_normal((4, 12, 12)).astype(np.float32)
    want = run_graph(before, {"data": x})["out"]
    got = run_graph(graph, {"data": x})["out"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    assert not PassManager([EqualizePass()], only=["equalize"]).run(graph).changes  # settled


# -- bias correction -----------------------------------------------------------------------------------------
def _single(kind, rng=RNG):
    b = GraphBuilder()
    x = b.input("data", (6, 10, 10))
    if kind == "conv3x3":
        _conv(b, x, 6, 7, 3, name="layer", rng=rng)
    elif kind == "dw":
        _conv(b, x, 6, 6, 3, name="layer", dw=True, rng=rng)
    else:
        _conv(b, x, 6, 7, 1, name="layer", rng=rng)
    return b.build()


def _int8_error(graph, refined, table, x):
    """int8 output (simulation) of the refined model minus the fp32 output of the original, per channel."""
    out = graph.layer("layer").outputs[0]
    want = Interpreter(graph).run({"data": x}, [out])[out].astype(np.float64)
    got = Interpreter(quantize(refined, table).graph).run({"data": x}, [out])[out].astype(np.float64)
    return got - want


@pytest.mark.parametrize("kind", ["conv3x3", "dw", "conv1x1"])
def test_bias_correction_zeroes_the_mean_output_error_on_the_data_it_saw(kind):
    graph = _single(kind)
    x = _smooth(24, 6, 10, 10)
    table = _table(graph, x)
    before = _int8_error(graph, graph, table, x).mean(axis=(0, 2, 3))
    refined = graph.copy()
    refine_graph(refined, table, {"data": x}, [find_refiner("bias-correction")])
    after = _int8_error(graph, refined, table, x).mean(axis=(0, 2, 3))
    assert np.abs(before).max() > 1e-3
    assert np.abs(after).max() < 1e-3 * np.abs(before).max()


# -- learned rounding ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["conv3x3", "dw", "conv1x1"])
def test_learned_rounding_lowers_the_reconstruction_error_on_held_apart_data(kind):
    rng = np.random.default_rng(0)  # its own data: the module's generator depends on which tests ran before
    graph = _single(kind, rng)
    seen, held = _smooth(48, 6, 10, 10, rng=rng), _smooth(48, 6, 10, 10, rng=rng)
    table = _table(graph, seen)
    refined = graph.copy()
    refined_table = CalibrationTable(dict(table.weight_scales), dict(table.input_scales))
    refine_graph(refined, refined_table, {"data": seen}, [find_refiner("adaround")])
    nearest = np.mean(_int8_error(graph, graph, table, held) ** 2)
    learned = np.mean(_int8_error(graph, refined, refined_table, held) ** 2)
    assert learned < nearest, (learned, nearest)
    if kind == "conv3x3":  # 6-bit weights (ncnn2table's winograd rule): rounding matters most
        assert learned < 0.8 * nearest, (learned, nearest)


# -- activation-scale search ---------------------------------------------------------------------------------
def test_activation_scale_search_lowers_the_output_error_on_held_apart_data():
    graph = _single("conv3x3")
    seen, held = _smooth(32, 6, 10, 10), _smooth(32, 6, 10, 10)
    table = _table(graph, seen)
    table.input_scales["layer"] *= 3.0  # a threshold a third of absmax: clips hard, as a bad calibrator might
    refined_table = CalibrationTable(dict(table.weight_scales), dict(table.input_scales))
    report = refine_graph(graph.copy(), refined_table, {"data": seen}, [find_refiner("act-scale")])
    assert refined_table.input_scales["layer"] < table.input_scales["layer"], report.notes
    before = np.mean(_int8_error(graph, graph, table, held) ** 2)
    after = np.mean(_int8_error(graph, graph, refined_table, held) ** 2)
    assert after < 0.5 * before, (after, before)
    again = CalibrationTable(dict(refined_table.weight_scales), dict(refined_table.input_scales))
    refine_graph(graph.copy(), again, {"data": seen}, [find_refiner("act-scale")],
                 {"act_scale_max": 1.1, "act_scale_images": 0})
    assert np.mean(_int8_error(graph, graph, again, seen) ** 2) <= np.mean(
        _int8_error(graph, graph, refined_table, seen) ** 2)  # never worse on the images it measured


def test_activation_scale_gives_the_readers_of_one_blob_one_scale_and_runs_as_simulated():
    b = GraphBuilder()
    x = b.input("data", (6, 10, 10))
    y = _conv(b, x, 6, 8, 1, act=1, name="producer")
    s1, s2 = b.layer("Split", [y], outputs=2, name="split")
    c1 = _conv(b, s1, 8, 5, 1, act=1, name="reader1")
    c2 = _conv(b, s2, 8, 5, 3, act=1, name="reader2")
    b.layer("Concat", [c1, c2], name="out")
    graph = b.build()
    data = _smooth(16, 6, 10, 10)
    table = _table(graph, data)
    table.input_scales["reader1"] *= 2.5  # the readers start apart: reader1 clips hard
    refine_graph(graph, table, {"data": data}, [find_refiner("act-scale")])
    assert table.input_scales["reader1"] == table.input_scales["reader2"]
    int8 = quantize(graph, table).graph
    sample = data[3]
    want = run_graph(int8, {"data": sample})["out"]
    got = Interpreter(int8).run({"data": sample[None]})["out"][0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


# -- compile end to end ------------------------------------------------------------------------------------------
def _small_model(tmp_path):
    b, rng = GraphBuilder(), np.random.default_rng(5)
    x = b.input("data", (3, 24, 24))
    y = _conv(b, x, 3, 8, 3, act=1, name="conv1", spread=10, rng=rng)
    y = b.layer("Pooling", [y], {0: 0, 1: 2, 2: 2}, name="pool")
    y = _conv(b, y, 8, 12, 1, act=1, name="expand", spread=10, rng=rng)
    y = _conv(b, y, 12, 12, 3, act=1, name="dw", dw=True, rng=rng)  # not 8k channels: docs/quantization.md
    y = _conv(b, y, 12, 10, 1, name="project", rng=rng)
    y = b.layer("Pooling", [y], {0: 1, 4: 1}, name="gap")
    b.layer("Softmax", [y], name="prob")
    graph = b.build()
    param, binf = tmp_path / "small.param", tmp_path / "small.bin"
    save(graph, param, binf)
    return param, binf


@pytest.fixture(scope="module")
def calib_dir(image_paths, tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.txt"
    path.write_text("".join(f"{p}\n" for p in image_paths[:12]))
    return path


@pytest.mark.parametrize("extra", [["--quality", "high", "--equalize", "method=aciq"],
                                   ["--quality", "high", "--asymmetric", "--winograd-bits", "8"],
                                   ["--quality", "high", "--equalize-activations"],
                                   ["--act-scale", "--adaround", "--bias-correction", "--auto-mixed-precision",
                                    "--target-cos", "0.99999"]])
def test_compile_quality_high_runs_in_the_runtime_as_simulated(tmp_path, calib_dir, image_paths, extra, capsys):
    param, binf = _small_model(tmp_path)
    out = tmp_path / "out"
    status = main(["compile", str(param), str(binf), "--int8", "--calib", str(calib_dir), "shape=[24,24,3]",
                   "mean=[104,117,123]", "norm=[0.02,0.02,0.02]", *extra, "-o", str(out)])
    assert status == 0
    text = capsys.readouterr().out
    stages = ["act scale", "adaround"] + ([] if "--quality" in extra else ["bias correction"])
    stages += [flag.removeprefix("--").replace("-", " ") for flag in extra if flag.startswith("--equalize")]
    for stage in stages:
        assert f"  {stage} " in text, text
    int8 = load(out / "model.param", out / "model.bin")
    fp32 = load(param, binf)
    kept = [layer.name for layer in int8.layers if layer.type in ("Convolution", "ConvolutionDepthWise")
            and layer.p("int8_scale_term") == 0]
    if "--auto-mixed-precision" in extra:
        assert kept
        for name in kept:  # a layer kept fp32 has its original weights back (stored fp16)
            np.testing.assert_allclose(int8.layer(name).weight("weight"), fp32.layer(name).weight("weight"),
                                       rtol=1e-3, atol=1e-3)
    else:
        assert not kept
    if "--asymmetric" in extra:  # the ReLU producers were shifted, the padded reader pads explicitly
        assert "asymmetric inputs on" in text
        assert any(layer.p("activation_type") == 3 for layer in int8.layers if layer.type == "Convolution")
        assert any(layer.type == "Padding" for layer in int8.layers)
    net = RuntimeNet(out / "model.param", out / "model.bin")
    sim = Interpreter(int8)
    from ncnnc.core.calibration import input_specs

    specs = input_specs(fp32, [image_paths[100:106]], mean=[[104, 117, 123]], norm=[[0.02] * 3],
                        shape=[[24, 24, 3]])
    for i in range(6):
        x = specs[0].load(i)
        want = net.run({"data": x}, ["prob"])["prob"].ravel()
        got = sim.run({"data": x[None]})["prob"].ravel()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_refine_options_are_user_errors_without_int8(tmp_path, calib_dir, capsys):
    param, binf = _small_model(tmp_path)
    out = tmp_path / "out"
    for args, message in ((["--adaround"], "--adaround applies only with --int8"),
                          (["--act-scale"], "--act-scale applies only with --int8"),
                          (["--quality", "high"], "--quality applies only with --int8"),
                          (["--winograd-bits", "8"], "--winograd-bits applies only with --int8"),
                          (["--asymmetric"], "--asymmetric applies only with --int8"),
                          (["--equalize-activations"], "--equalize-activations applies only with --int8"),
                          (["--int8", "--calib", str(calib_dir), "--adaround", "--refine-images", "0",
                            "shape=[24,24,3]"], "--refine-images 0: need at least 1")):
        assert main(["compile", str(param), str(binf), *args, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not out.exists()

