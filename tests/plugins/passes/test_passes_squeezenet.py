"""The shared plain SqueezeNet optimizes exactly as ncnnoptimize optimizes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import bin_bytes, param_text, save
from ncnnc.backends.numpy import Interpreter
from ncnnc.core.ir import Graph
from ncnnc.core.optimize import optimize
from ncnnc.frontends.ncnn import load
from ncnnc.frontends.ncnn import parse_param as parse_param_text

MEAN = [104.0, 117.0, 123.0]


def plain(squeezenet_dir: Path) -> Graph:
    return load(squeezenet_dir / "squeezenet_v1.1.param", squeezenet_dir / "squeezenet_v1.1.bin")


def test_fp32_is_byte_identical_to_ncnnoptimize(squeezenet_dir):
    graph = plain(squeezenet_dir)
    report = optimize(graph, storage=0, validate=True)
    reference = squeezenet_dir / "ncnn-reference"
    assert param_text(graph) == (reference / "squeezenet_v1.1-opt32.param").read_text()
    assert bin_bytes(graph) == (reference / "squeezenet_v1.1-opt32.bin").read_bytes()
    assert report.passes.counts()["fuse_convolution_activation"] == 26
    assert report.passes.counts()["eliminate_dropout"] == 1


def test_fp16_matches_the_shipped_opt_model(squeezenet_dir):
    graph = plain(squeezenet_dir)
    report = optimize(graph, storage=65536, validate=True)
    assert bin_bytes(graph) == (squeezenet_dir / "squeezenet_v1.1-opt.bin").read_bytes()
    assert (report.layers_before, report.layers_after) == (75, 48)
    assert report.bin_bytes_after == (squeezenet_dir / "squeezenet_v1.1-opt.bin").stat().st_size
    shipped = parse_param_text((squeezenet_dir / "squeezenet_v1.1-opt.param").read_text())
    assert len(graph) == len(shipped) == 48
    for ours, theirs in zip(graph.layers, shipped.layers):
        assert (ours.type, ours.name, ours.inputs, ours.outputs) == (theirs.type, theirs.name, theirs.inputs,
                                                                      theirs.outputs)
        assert {k: v for k, v in ours.params.items() if k != 30} == dict(theirs.params.items()), ours.name
    assert not [x for x in graph.layers if x.type in ("ReLU", "Dropout")]
    assert all(x.p("activation_type") == 1 for x in graph.layers if x.type == "Convolution")


def test_level_1_changes_no_weight(squeezenet_dir):
    graph = plain(squeezenet_dir)
    original = bin_bytes(graph)
    optimize(graph, level=1, validate=True)
    assert len(graph) == 48 and bin_bytes(graph) == original


def preprocess(path: Path) -> np.ndarray:
    """BGR, ncnn's bilinear resize to 227x227, mean subtracted (as ncnn's SqueezeNet example)."""
    import ncnn
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    mat = ncnn.Mat.from_pixels_resize(bgr, ncnn.Mat.PixelType.PIXEL_BGR, bgr.shape[1], bgr.shape[0], 227, 227)
    mat.substract_mean_normalize(MEAN, [])
    return np.array(mat, dtype=np.float32)


@pytest.fixture(scope="module")
def optimized_models(squeezenet_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("opt")
    models = {}
    for flag in (0, 65536):
        graph = plain(squeezenet_dir)
        optimize(graph, storage=flag)
        save(graph, out / f"opt{flag}.param", out / f"opt{flag}.bin")
        models[flag] = RuntimeNet(out / f"opt{flag}.param", out / f"opt{flag}.bin")
    return models


def test_top1_unchanged_on_20_images(squeezenet_dir, image_paths, optimized_models):
    before = RuntimeNet(squeezenet_dir / "squeezenet_v1.1.param", squeezenet_dir / "squeezenet_v1.1.bin")
    for path in image_paths[::25]:
        x = {"data": preprocess(path)}
        ref = before.run(x, ["prob"])["prob"]
        fp32 = optimized_models[0].run(x, ["prob"])["prob"]
        fp16 = optimized_models[65536].run(x, ["prob"])["prob"]
        assert np.abs(fp32 - ref).max() <= 1e-5 * np.abs(ref).max(), path.name
        assert fp32.argmax() == ref.argmax() == fp16.argmax(), path.name


def test_numpy_backend_agrees(squeezenet_dir, image_paths):
    graph = plain(squeezenet_dir)
    after = graph.copy()
    optimize(after, storage=0)
    x = preprocess(image_paths[0])[None]
    ref = Interpreter(graph).run({"data": x}, ["prob"])["prob"]
    got = Interpreter(after).run({"data": x}, ["prob"])["prob"]
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
