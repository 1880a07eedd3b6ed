"""A custom layer end to end through a plugin: ``YoloV5Focus`` of the example plugin package makes the
public yolov5s.param load, infer its shapes and calibrate; without the plugin, the error names it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ncnnc.backends.ncnn_writer import save
from ncnnc.core.calibration import calibrate
from ncnnc.core.random_weights import fill_missing_weights
from ncnnc.core.shapes import infer_shapes
from ncnnc.frontends.ncnn import load

from .test_ncnn_assets import ASSETS, PLUGIN_MODULE, plugin

YOLOV5 = ASSETS / "yolov5s.param"


def test_without_the_plugin_the_error_names_it() -> None:
    """A fresh process without the plugin: one line naming the missing plugin, exit status 2."""
    done = subprocess.run([sys.executable, "-m", "ncnnc", "inspect", str(YOLOV5), "--shape", "[64,64,3]"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "YoloV5Focus" in done.stderr and "ncnnc-example-plugin" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_with_the_plugin_yolov5_infers_and_calibrates(tmp_path: Path, image_paths: list[Path]) -> None:
    """With the plugin registered: Focus's shape rule, then calibration through its numpy op."""
    with plugin(PLUGIN_MODULE):
        graph = load(YOLOV5)
        shapes = infer_shapes(graph, {"images": (3, 64, 64)})
        focus = next(layer for layer in graph.layers if layer.type == "YoloV5Focus")
        assert shapes[focus.outputs[0]] == (12, 32, 32)
        fill_missing_weights(graph, seed=5)
        save(graph, tmp_path / "y.param", tmp_path / "y.bin")
        result = calibrate(tmp_path / "y.param", tmp_path / "y.bin", image_paths[:2], tmp_path / "y.table",
                           norm=[1 / 255] * 3, shape=[64, 64, 3], pixel="RGB", method="minmax")
    assert len(result.table.input_scales) == 70  # every Convolution of yolov5s
    assert all(np.isfinite(v).all() and (np.asarray(v) > 0).all() for v in result.table.input_scales.values())


def test_inspect_takes_a_shape_per_input() -> None:
    """A two-input model (Faster R-CNN: image and im_info): --input/--shape pairs, or ncnn2table's
    shape=[..],[..], give each input its shape; an unknown input is one line, exit 2."""
    model = str(ASSETS / "ZF_faster_rcnn_final.param")

    def inspect(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ncnnc", "inspect", model, *args, "--summary"],
                              capture_output=True, text=True)

    pairs = inspect("--input", "data", "--shape", "[96,96,3]", "--input", "im_info", "--shape", "[3]")
    table_form = inspect("shape=[96,96,3],[3]")
    assert pairs.returncode == table_form.returncode == 0, pairs.stderr + table_form.stderr
    assert "MACs:" in pairs.stdout and pairs.stdout == table_form.stdout
    bad = inspect("--input", "im_nfo", "--shape", "[3]")
    assert bad.returncode == 2 and "im_nfo" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
