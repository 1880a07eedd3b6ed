"""Lossless int8 image input (core/exact_input.py): the rewritten fp32 model computes the same function in the
real runtime, the first convolution's int8 input is exactly ``pixel - 128``, the runtime and the LLVM JIT run
the int8 model as the simulation does, and conv1's int8 output is closer to fp32 than with ncnn2table's input
scale."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ncnnc.backends.llvm.jit import jit
from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import calibrate, input_specs, weight_scales
from ncnnc.core.exact_input import exact_input_layers, make_input_exact
from ncnnc.core.int8 import float2int8
from ncnnc.core.optimize import optimize
from ncnnc.core.preprocess import load_image
from ncnnc.core.table import CalibrationTable
from ncnnc.frontends.ncnn import load
from ncnnc.plugins.quantizer import quantize

SQUEEZENET = dict(mean=[104.0, 117.0, 123.0], norm=[1.0, 1.0, 1.0], shape=[227, 227, 3], pixel="BGR")
RGB = dict(mean=[123.675, 116.28, 103.53], norm=[0.0171, 0.0175, 0.0174], shape=[40, 32, 3], pixel="RGB")


def _rewritten(graph, table: CalibrationTable, pre: dict):
    """Copies of the graph and table with every eligible convolution's input made exact; their names."""
    graph, table = copy.deepcopy(graph), copy.deepcopy(table)
    convs = exact_input_layers(graph, table, graph.inputs)
    for conv in convs:
        make_input_exact(graph, table, conv, pre["mean"], pre["norm"], lambda layer: weight_scales(layer))
    return graph, table, [c.name for c in convs]


def _calibrated(graph, paths: list[Path], pre: dict) -> CalibrationTable:
    cal = calibrate(graph, lists=[paths], method="kl", mean=[pre["mean"]], norm=[pre["norm"]],
                    shape=[pre["shape"]], pixel=[pre["pixel"]])
    return CalibrationTable.parse(cal.table.to_text())


def _inputs(graph, paths: list[Path], pre: dict) -> np.ndarray:
    specs = input_specs(graph, [paths], mean=[pre["mean"]], norm=[pre["norm"]], shape=[pre["shape"]],
                        pixel=[pre["pixel"]])
    return np.stack([specs[0].load(i) for i in range(len(paths))])


def _check_exact(graph, rewritten, int8, paths: list[Path], pre: dict, conv: str) -> None:
    """fp32 identity in the runtime; int8 input = pixel - 128 (the runtime equals the simulation)."""
    x = _inputs(graph, paths, pre)
    out = graph.outputs[0]
    for image in x:
        before = run_graph(graph, {graph.inputs[0]: image}, [out])[out]
        after = run_graph(rewritten, {graph.inputs[0]: image}, [out])[out]
        np.testing.assert_allclose(after, before, rtol=0, atol=2e-5 * float(np.abs(before).max()))
    layer = int8.layer(conv)
    assert float(layer.weight("bottom_int8_scales").ravel()[0]) == 1.0
    simulated = Interpreter(int8).run({graph.inputs[0]: x}, [layer.inputs[0], out])
    pixels = np.stack([load_image(p, pixel=pre["pixel"], shape=tuple(pre["shape"])) for p in paths])
    want = np.clip(pixels - 128, -127, 127)
    got = float2int8(simulated[layer.inputs[0]])
    if got.shape != want.shape:  # padded: the border holds each channel's zero
        got = got[..., 1:-1, 1:-1]
    np.testing.assert_array_equal(got, want)
    native = jit(int8, use_cache=False)
    for image, sim in zip(x, simulated[out]):
        real = run_graph(int8, {graph.inputs[0]: image}, [out])[out]
        np.testing.assert_allclose(sim.reshape(real.shape), real, rtol=0, atol=1e-5 * float(np.abs(real).max()))
        # the LLVM backend lowers the Scale and the per-channel Padding: its output is the simulation's
        np.testing.assert_allclose(native({graph.inputs[0]: image})[out].reshape(real.shape), sim.reshape(real.shape),
                                   rtol=0, atol=1e-6 * float(np.abs(real).max()))


def test_squeezenet_conv1_reads_the_pixels(squeezenet_dir: Path, image_paths: list[Path]) -> None:
    graph = load(squeezenet_dir / "squeezenet_v1.1.param", squeezenet_dir / "squeezenet_v1.1.bin")
    optimize(graph)
    table = _calibrated(graph, image_paths[:8], SQUEEZENET)
    rewritten, new_table, convs = _rewritten(graph, table, SQUEEZENET)
    assert convs == ["conv1"]
    assert [layer.type for layer in rewritten.layers[:3]] == ["Input", "Scale", "Convolution"]
    int8 = quantize(rewritten, new_table).graph
    _check_exact(graph, rewritten, int8, image_paths[8:11], SQUEEZENET, "conv1")
    # conv1's int8 output is closer to fp32 than with the table's own input scale (threshold 128 here)
    x = _inputs(graph, image_paths[20:24], SQUEEZENET)
    out = graph.layer("conv1").outputs[0]
    fp32 = Interpreter(graph).run({"data": x}, [out])[out]
    plain = Interpreter(quantize(graph, table).graph).run({"data": x}, [out])[out]
    exact = Interpreter(int8).run({"data": x}, [out])[out]
    assert np.abs(exact - fp32).mean() < 0.6 * np.abs(plain - fp32).mean()


def test_a_padded_convolution_with_per_channel_norms(image_paths: list[Path]) -> None:
    """Per-channel mean and norm, a padded first convolution read by two layers: a Padding layer pads each
    channel with the image's zero; the other reader keeps the original input."""
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    data = b.input("data", (3, 32, 40))
    conv = b.layer("Convolution", [data], {0: 8, 1: 3, 3: 2, 4: 1, 5: 1, 6: 216, 9: 1},
                   {"weight": rng.normal(0, 0.3, 216), "bias": rng.normal(0, 0.1, 8)}, name="conv")
    pooled = b.layer("Pooling", [data], {0: 1, 1: 2, 2: 2}, name="pool")  # a second reader of the image
    side = b.layer("Convolution", [pooled], {0: 8, 1: 1, 5: 1, 6: 24}, {"weight": rng.normal(0, 0.3, 24),
                                                                         "bias": rng.normal(0, 0.1, 8)})
    b.layer("BinaryOp", [conv, side], {0: 0}, name="out")
    graph = b.build()
    table = _calibrated(graph, image_paths[:6], RGB)
    rewritten, new_table, convs = _rewritten(graph, table, RGB)
    assert convs == ["conv"]
    assert [layer.type for layer in rewritten.layers[:3]] == ["Input", "Scale", "Padding"]
    assert rewritten.layer("pool").inputs == ["data"]
    int8 = quantize(rewritten, new_table).graph
    _check_exact(graph, rewritten, int8, image_paths[6:9], RGB, "conv")


def test_compile_writes_the_rewrite_and_keeps_the_calibrated_table(tmp_path: Path) -> None:
    """``compile(exact_input=True)``: the model has the Scale layer and conv1 reads with scale 1; model.table
    keeps conv1's calibrated scales (they fit the model as loaded, as ``ncnnc quantize`` would use them)."""
    import ncnnc

    example = Path(__file__).resolve().parents[2] / "examples" / "squeezenet"
    model = [example / "squeezenet_v1.1.param", example / "squeezenet_v1.1.bin"]
    images = sorted((example / "images").iterdir())[:4]
    pre = dict(mean=SQUEEZENET["mean"], norm=SQUEEZENET["norm"], shape=SQUEEZENET["shape"])
    plain = ncnnc.compile(model, calib=images, out_dir=tmp_path / "plain", **pre)
    exact = ncnnc.compile(model, calib=images, exact_input=True, out_dir=tmp_path / "exact", **pre)
    int8 = load(tmp_path / "exact" / "model.param", tmp_path / "exact" / "model.bin")
    assert int8.layers[1].type == "Scale" and int8.layer("conv1").inputs == int8.layers[1].outputs
    assert float(int8.layer("conv1").weight("bottom_int8_scales").ravel()[0]) == 1.0
    assert "conv1" in exact.notes["exact input"]
    written = (tmp_path / "exact" / "model.table").read_text()
    assert written == (tmp_path / "plain" / "model.table").read_text() and plain.table is not None
    kept = ncnnc.compile(model, calib=images, exact_input=True, fp32_layers=["conv1"], **pre)
    assert kept.graph.layers[1].type == "Convolution"  # a layer kept fp32 is left as it is
    assert kept.notes["exact input"] == "no int8 convolution reads an 8-bit image directly"
