"""The outside plugin package in ``examples/plugin/``, pip-installed and driven through its entry points.

The package is installed with pip (``--target`` a temporary folder, which is then on ``PYTHONPATH``
of the ``ncnnc`` processes run here): ncnnc finds its calibrator and fusion pattern only through the
``ncnnc`` entry points of its dist-info, as it would after ``pip install``.  Everything runs on the
bundled SqueezeNet example, with a per-channel ``Scale`` inserted after ``conv1`` for the fusion
pattern to fold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import save
from ncnnc.core.ir import Layer, Weight
from ncnnc.core.preprocess import load_image, substract_mean_normalize
from ncnnc.core.table import CalibrationTable
from ncnnc.frontends.ncnn import load

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "plugin"
EXAMPLE = ROOT / "examples" / "squeezenet"
PRE = ["mean=[104,117,123]", "norm=[1,1,1]", "shape=[227,227,3]", "pixel=BGR"]
SOURCE = "[ncnnc-example-plugin 0.1.0]"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin package pip-installed into a folder of its own (built from a copy: no build/ in the repo)."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = shutil.copytree(PLUGIN, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (target / "ncnnc_example_plugin-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


def ncnnc(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``ncnnc ARGS`` in a process that sees the installed plugin."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "ncnnc", *args], env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def scaled_model(tmp_path_factory) -> list[str]:
    """The bundled SqueezeNet with a per-channel Scale (with bias) between conv1 and its ReLU."""
    graph = load(EXAMPLE / "squeezenet_v1.1.param", EXAMPLE / "squeezenet_v1.1.bin")
    conv1, relu = graph.layer("conv1"), graph.layer("relu_conv1")
    rng = np.random.default_rng(13)
    scale = Layer("Scale", "conv1_scale", ["conv1"], ["conv1_scaled"], {0: 64, 1: 1},
                  {"scale": Weight(rng.uniform(0.5, 2.0, 64).astype(np.float32), "raw"),
                   "bias": Weight(rng.uniform(-1, 1, 64).astype(np.float32), "raw")})
    graph.insert_after(conv1, scale)
    relu.inputs[0] = "conv1_scaled"
    out = tmp_path_factory.mktemp("scaled")
    save(graph, out / "scaled.param", out / "scaled.bin")
    return [str(out / "scaled.param"), str(out / "scaled.bin")]


def images(n: int) -> list[Path]:
    """The first ``n`` bundled images."""
    return sorted((EXAMPLE / "images").iterdir())[:n]


def preprocess(path: Path) -> np.ndarray:
    """The bundled example's preprocessing of one image, (3, 227, 227) float32."""
    x = load_image(path, pixel="BGR", shape=(227, 227, 3))
    return np.asarray(substract_mean_normalize(x, [104, 117, 123], [1, 1, 1]), np.float32)


def test_plugins_lists_the_outside_items_with_their_package(site):
    listed = ncnnc(site, "plugins")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    topk = next(line for line in lines if line.strip().startswith("topk "))
    fusion = next(line for line in lines if line.strip().startswith("fuse_convolution_scale "))
    assert SOURCE in topk and SOURCE in fusion
    assert "k=100" in listed.stdout  # the calibrator's parameter and its default


def test_optimize_runs_the_outside_fusion_pattern(site, scaled_model, tmp_path):
    out = [str(tmp_path / "opt.param"), str(tmp_path / "opt.bin")]
    done = ncnnc(site, "optimize", *scaled_model, *out)
    assert done.returncode == 0, done.stderr
    assert "fuse_convolution_scale x1" in done.stdout
    optimized = load(*out)
    assert "Scale" not in {layer.type for layer in optimized.layers}
    # the real ncnn runtime: the folded model computes what the model with the Scale layer did
    x = preprocess(images(1)[0])
    before = RuntimeNet(*scaled_model).run({"data": x}, ["prob"])["prob"]
    after = RuntimeNet(*out).run({"data": x}, ["prob"])["prob"]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-6)
    # without the plugin nothing folds the Scale
    plain = subprocess.run([sys.executable, "-m", "ncnnc", "optimize", *scaled_model, *out],
                           capture_output=True, text=True)
    assert plain.returncode == 0 and "fuse_convolution_scale" not in plain.stdout
    assert "Scale" in {layer.type for layer in load(*out).layers}


def test_compile_with_the_outside_calibrator_and_fusion(site, scaled_model, tmp_path):
    calib = images(8)
    lst = tmp_path / "calib.txt"
    lst.write_text("".join(f"{p}\n" for p in calib))
    out = tmp_path / "out"
    done = ncnnc(site, "compile", *scaled_model, "--int8", "--calib", str(lst), *PRE, "method=topk", "k=50",
                 "-o", str(out))
    assert done.returncode == 0, done.stderr
    graph = load(out / "model.param", out / "model.bin")
    assert "Scale" not in {layer.type for layer in graph.layers}  # the plugin's pattern ran in compile
    assert graph.layer("conv1").p("int8_scale_term") == 2
    # conv1's input is the image itself: its scale is 127 / (the 50th largest |x| of the 8 images)
    values = np.concatenate([np.abs(preprocess(p)).ravel() for p in calib])
    threshold = np.sort(values)[-50]
    table = CalibrationTable.load(out / "model.table")
    assert table.input_scales["conv1"] == pytest.approx(127 / threshold, rel=1e-5)
    # the int8 model runs in the real ncnn runtime and mostly agrees with fp32
    fp32, int8 = RuntimeNet(*scaled_model), RuntimeNet(out / "model.param", out / "model.bin")
    agree = 0
    for path in images(8):
        x = preprocess(path)
        a, b = fp32.run({"data": x}, ["prob"])["prob"], int8.run({"data": x}, ["prob"])["prob"]
        assert b.sum() == pytest.approx(1, abs=1e-3)
        agree += int(np.argmax(a) == np.argmax(b))
    assert agree >= 6, agree
    # a parameter the method does not have is a one-line error before any work
    bad = ncnnc(site, "compile", *scaled_model, "--int8", "--calib", str(lst), *PRE, "method=topk", "kk=5",
                "-o", str(tmp_path / "bad"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "kk=" in bad.stderr and "k" in bad.stderr and "optimizing" not in bad.stderr
