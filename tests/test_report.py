"""The quantization report (``compile --report``, ``eval --report``), ``eval --json``, opened in a real
headless Chromium, on the bundled SqueezeNet example."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ncnnc.core.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "squeezenet"
MODEL = [str(EXAMPLE / "squeezenet_v1.1.param"), str(EXAMPLE / "squeezenet_v1.1.bin")]
PRE = ["mean=[104,117,123]", "norm=[1,1,1]", "shape=[227,227,3]", "pixel=BGR"]
CHARTS = 1 + 26  # the cosine bar chart, and one histogram per quantizable layer of SqueezeNet
BAR_BLUE = (31, 119, 180)  # the cosine bars' colour (#1f77b4)

pytest.importorskip("matplotlib", reason="the report needs the extra ncnnc[report] (matplotlib)")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The bundled model compiled on 8 images with conv10 kept fp32, and its compile report."""
    tmp = tmp_path_factory.mktemp("report")
    calib = tmp / "calib.txt"
    calib.write_text("".join(f"{p}\n" for p in sorted((EXAMPLE / "images").iterdir())[:8]))
    assert main(["compile", *MODEL, "--int8", "--calib", str(calib), *PRE, "--fp32-layers", "conv10",
                 "--report", str(tmp / "compile.html"), "-o", str(tmp / "out")]) == 0
    return tmp


def test_compile_report_says_why_layers_stayed_fp32(compiled, capsys):
    page = (compiled / "compile.html").read_text()
    assert page.count('<img class="chart"') == CHARTS
    assert re.search(r"<td>conv10</td><td>asked to stay fp32</td>", page)
    assert "<script src" not in page and "<link" not in page  # self-contained


def test_eval_json_and_report_count_layers_as_compile_does(compiled, capsys):
    out = compiled / "out"
    capsys.readouterr()
    assert main(["eval", *MODEL, str(out / "model.param"), str(out / "model.bin"), str(EXAMPLE / "images"), *PRE,
                 "--labels", str(EXAMPLE / "synset_words.txt"), "--limit", "8", "--json",
                 "--report", str(compiled / "eval.html")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 8 and set(result["top1"]) == {"fp32", "int8"}
    assert result["quantized_layers"] == 25 and result["kept_fp32"] == ["conv10"]
    names = [entry["layer"] for entry in result["layer_cosine"]]
    assert "conv10" not in names and len(names) == 25
    assert all(0.9 < entry["cosine"] <= 1.0 + 1e-9 for entry in result["layer_cosine"])
    page = (compiled / "eval.html").read_text()
    assert page.count('<img class="chart"') == CHARTS
    for method in ("chosen", "kl", "aciq", "minmax"):  # the alternatives are marked (legend of every histogram)
        assert method in page
    assert "top-1" in page and "agreement" in page and "int8 .bin" in page


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    message = "headless Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_report_renders_in_headless_chromium(compiled, tmp_path):
    report = compiled / "eval.html"
    if not report.exists():
        pytest.skip("the eval report test did not run")
    browser = _chromium()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    done = subprocess.run([*common, "--window-size=1200,1600", f"--screenshot={shot}", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200)
    assert (pixels.min(axis=2) < 200).mean() > 0.05  # far from blank: text, tables and charts
    blue = np.all(np.abs(pixels.astype(int) - BAR_BLUE) < 12, axis=2)
    assert blue.sum() > 2000, blue.sum()  # the cosine bar chart is drawn in the first screen
    dom = subprocess.run([*common, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    rendered = re.search(r'data-charts-rendered="(\d+)/(\d+)"', dom.stdout)
    assert rendered, dom.stderr[-2000:]
    assert (int(rendered[1]), int(rendered[2])) == (CHARTS, CHARTS)  # every chart decoded and drawn
