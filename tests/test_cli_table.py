"""``ncnnc table`` (ncnn2table's command line) and ``ncnnc calibrate``: the real model and images,
bad input, determinism, eq, and a calibrator installed from outside through an entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ncnnc.backends.ncnn_writer import save
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.cli import main
from ncnnc.core.table import CalibrationTable

NCNN_ARGS = ["mean=[104,117,123]", "norm=[1,1,1]", "shape=[227,227,3]", "pixel=BGR"]


@pytest.fixture(scope="module")
def model(squeezenet_dir: Path) -> list[str]:
    m = squeezenet_dir / "ncnn-reference" / "squeezenet_v1.1-opt32"
    return [str(m) + ".param", str(m) + ".bin"]


@pytest.fixture(scope="module")
def images(tmp_path_factory, image_paths) -> Path:
    lst = tmp_path_factory.mktemp("lists") / "images.txt"
    lst.write_text("".join(f"{p}\n" for p in image_paths[:3]))
    return lst


def _table(model, lst, out, *extra, expect=0, capsys=None):
    code = main(["table", *model, str(lst), str(out), *extra])
    assert code == expect
    return code


def test_ncnn2table_command_line(model, images, tmp_path, capsys):
    out = tmp_path / "kl.table"
    _table(model, images, out, *NCNN_ARGS, "thread=1", "method=kl")
    summary = capsys.readouterr().out
    assert "calibrated 26 layers with kl on 3 images" in summary and str(out) in summary
    table = CalibrationTable.load(out)
    assert len(table.weight_scales) == len(table.input_scales) == 26
    lines = out.read_text().splitlines()
    assert lines[0].startswith("conv1_param_0 187.389053 246.536499 ")  # as ncnn2table writes it
    assert lines[26].startswith("conv1 ") and lines[26].endswith(" ")
    # same command again, and with two worker processes: the same bytes
    _table(model, images, tmp_path / "again.table", *NCNN_ARGS, "thread=1", "method=kl")
    _table(model, images, tmp_path / "two.table", *NCNN_ARGS, "thread=2", "method=kl")
    assert out.read_bytes() == (tmp_path / "again.table").read_bytes() == (tmp_path / "two.table").read_bytes()
    # ncnnc calibrate with --options gives the same table
    assert main(["calibrate", *model, str(images), str(tmp_path / "opt.table"), "--mean", "104,117,123",
                 "--norm", "1,1,1", "--shape", "227,227,3", "--pixel", "BGR", "--method", "kl", "-v"]) == 0
    report = capsys.readouterr().out
    assert "fire9/expand3x3" in report and "threshold =" in report
    assert (tmp_path / "opt.table").read_bytes() == out.read_bytes()


def test_winograd_8_gives_3x3_convolutions_finer_weights_only(model, images, tmp_path, capsys):
    _table(model, images, tmp_path / "six.table", *NCNN_ARGS, "method=kl", "thread=1")
    _table(model, images, tmp_path / "eight.table", *NCNN_ARGS, "method=kl", "thread=1", "winograd=8")
    six, eight = CalibrationTable.load(tmp_path / "six.table"), CalibrationTable.load(tmp_path / "eight.table")
    assert six.input_scales == eight.input_scales
    for name, scales in six.weight_scales.items():
        ratio = np.asarray(eight.weight_scales[name]) / np.asarray(scales)
        # every SqueezeNet expand3x3 channel fits ncnn's winograd budget at 127 levels: 127/31 finer
        np.testing.assert_allclose(ratio, 127 / 31 if name.endswith("expand3x3") else 1.0, rtol=1e-5)
    assert _table(model, images, tmp_path / "bad.table", *NCNN_ARGS, "winograd=7", expect=2) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "winograd=7: expected 6" in err
    assert not (tmp_path / "bad.table").exists()


def test_eq_works_on_squeezenet(model, images, tmp_path):
    out = tmp_path / "eq.table"
    _table(model, images, out, *NCNN_ARGS, "method=eq", "images=1", "steps=3")
    kl = tmp_path / "kl.table"
    _table(model, images, kl, *NCNN_ARGS, "method=kl")
    eq_t, kl_t = CalibrationTable.load(out), CalibrationTable.load(kl)
    assert list(eq_t.input_scales) == list(kl_t.input_scales)
    for name, scale in eq_t.input_scales.items():  # each scale is one of the 3 candidates (or kept)
        grid = kl_t.input_scales[name] * np.array([0.5, 1.0, 1.5])
        assert np.min(np.abs(grid - scale) / scale) < 1e-4 or scale == kl_t.input_scales[name]


@pytest.mark.parametrize("case", ["missing list", "unreadable image", "empty list", "zero images",
                                  "shape does not fit", "unknown method", "bad key value", "second list"])
def test_bad_input(model, images, tmp_path, capsys, case):
    lst = tmp_path / "list.txt"
    args = list(NCNN_ARGS)
    if case == "missing list":
        lst = tmp_path / "nope.txt"
    elif case == "unreadable image":
        bad = tmp_path / "broken.jpg"
        bad.write_bytes(b"not a jpeg at all")
        lst.write_text(images.read_text() + f"{bad}\n")
    elif case == "empty list":
        lst.write_text("")
    elif case == "zero images":
        lst.write_text("\n  \n\n")
    elif case == "shape does not fit":
        lst = images
        args = ["mean=[104]", "norm=[1]", "shape=[227,227,1]", "pixel=GRAY"]
    elif case == "unknown method":
        lst, args = images, [*args, "method=magic"]
    elif case == "bad key value":
        lst, args = images, [*args, "thread=two"]
    else:
        lst = Path(f"{images},{images}")
    out = tmp_path / "out.table"
    assert main(["table", *model, str(lst), str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ncnnc table: error: ") and len(err.splitlines()) == 1, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.table")]
    expected = {"missing list": "nope.txt", "unreadable image": "broken.jpg", "empty list": "zero images",
                "zero images": "zero images", "shape does not fit": "does not fit the model",
                "unknown method": "no calibrator named 'magic'", "bad key value": "thread=two",
                "second list": "1 input(s)"}[case]
    assert expected in err


# -- a calibrator from outside, installed through a real entry point ---------------------------------
PLUGIN = '''
"""A minimal outside calibrator: a fraction of the absmax."""
import numpy as np
from ncnnc.core.calibration import Calibrator, CalibratorFactory, CalibratorParam
from ncnnc.core.hookspecs import hookimpl


class FractionOfMax(Calibrator):
    def __init__(self, fraction=0.5):
        self.fraction, self.peak = fraction, 0.0

    def observe(self, batch):
        self.peak = max(self.peak, float(np.abs(batch).max()))

    def merge(self, other):
        self.peak = max(self.peak, other.peak)

    def threshold(self):
        return self.peak * self.fraction


@hookimpl
def ncnnc_calibrators():
    return [CalibratorFactory("fracmax", "a fraction of the absmax", FractionOfMax,
                              params=(CalibratorParam("fraction", 0.5, "the fraction"),))]
'''


def _tiny_model(tmp_path: Path) -> tuple[list[str], Path]:
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("data", (2, 6, 6))
    c = b.layer("Convolution", [x], {0: 3, 1: 1, 5: 0, 6: 6}, {"weight": rng.standard_normal((3, 2, 1, 1))})
    b.layer("InnerProduct", [c], {0: 4, 1: 0, 2: 4 * 108}, {"weight": rng.standard_normal((4, 108))})
    param, binf = tmp_path / "tiny.param", tmp_path / "tiny.bin"
    save(b.build(), param, binf)
    paths = []
    for i in range(4):
        np.save(tmp_path / f"t{i}.npy", rng.standard_normal((2, 6, 6)).astype(np.float32) * (i + 1))
        paths.append(str(tmp_path / f"t{i}.npy"))
    lst = tmp_path / "npy.txt"
    lst.write_text("\n".join(paths) + "\n")
    return [str(param), str(binf)], lst


def test_outside_calibrator_through_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "fracmax_plugin.py").parent.mkdir()
    (site / "fracmax_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "ncnnc_fracmax-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ncnnc-fracmax\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ncnnc]\nfracmax = fracmax_plugin\n")
    model, lst = _tiny_model(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    def ncnnc(*args):
        return subprocess.run([sys.executable, "-m", "ncnnc", *args], env=env, capture_output=True, text=True)

    listed = ncnnc("plugins", "calibrators")
    assert "fracmax" in listed.stdout and "ncnnc-fracmax 0.1" in listed.stdout, listed
    run = ncnnc("table", *model, str(lst), str(tmp_path / "f.table"), "shape=[6,6,2]", "type=1",
                "method=fracmax", "fraction=0.25")
    assert run.returncode == 0, run.stderr
    ref = ncnnc("table", *model, str(lst), str(tmp_path / "m.table"), "shape=[6,6,2]", "type=1", "method=minmax")
    assert ref.returncode == 0, ref.stderr
    frac, mm = CalibrationTable.load(tmp_path / "f.table"), CalibrationTable.load(tmp_path / "m.table")
    for name, scale in mm.input_scales.items():
        assert frac.input_scales[name] == pytest.approx(4 * scale, rel=1e-5)
    bad = ncnnc("table", *model, str(lst), str(tmp_path / "x.table"), "shape=[6,6,2]", "type=1",
                "method=fracmax", "ratio=3")
    assert bad.returncode == 2 and "no parameter 'ratio' (parameters: fraction)" in bad.stderr


def test_two_inputs_with_their_own_settings(tmp_path, image_paths):
    """Comma-separated lists, one mean/norm/shape/pixel per input, routed to the right input."""
    from ncnnc.core.preprocess import load_image, substract_mean_normalize

    rng = np.random.default_rng(1)
    b = GraphBuilder()
    xa, xb = b.input("a", (3, 16, 16)), b.input("b", (1, 8, 8))
    b.layer("Convolution", [xa], {0: 2, 1: 1, 6: 6}, {"weight": rng.standard_normal((2, 3, 1, 1))}, name="conv_a")
    b.layer("Convolution", [xb], {0: 2, 1: 1, 6: 2}, {"weight": rng.standard_normal((2, 1, 1, 1))}, name="conv_b")
    param, binf = tmp_path / "two.param", tmp_path / "two.bin"
    save(b.build(), param, binf)
    la, lb = tmp_path / "a.txt", tmp_path / "b.txt"
    la.write_text(f"{image_paths[0]}\n{image_paths[1]}\n")
    lb.write_text(f"{image_paths[2]}\n{image_paths[3]}\n")
    out = tmp_path / "two.table"
    assert main(["table", str(param), str(binf), f"{la},{lb}", str(out), "mean=[1,2,3],[100]",
                 "norm=[1,1,1],[0.5]", "shape=[16,16,3],[8,8]", "pixel=BGR,GRAY", "method=minmax"]) == 0
    table = CalibrationTable.load(out)
    for layer, paths, pixel, shape, mean, norm in (("conv_a", image_paths[:2], "BGR", (16, 16), [1, 2, 3], [1, 1, 1]),
                                                   ("conv_b", image_paths[2:4], "GRAY", (8, 8), [100], [0.5])):
        absmax = max(float(np.abs(substract_mean_normalize(load_image(p, pixel, shape), mean, norm)).max())
                     for p in paths)
        assert table.input_scales[layer] == pytest.approx(127 / absmax, rel=1e-6)


def test_table_round_trip_with_comments(model, images, tmp_path):
    """A commented-out layer stays commented; the table reads back to the same bytes."""
    out = tmp_path / "t.table"
    assert main(["table", *model, str(images), str(out), *NCNN_ARGS, "method=minmax"]) == 0
    lines = out.read_text().splitlines()
    text = "\n".join(f"#{line}" if line.startswith("conv10") else line for line in lines) + "\n"
    table = CalibrationTable.parse(text)
    assert "conv10" in table.commented and "conv10" not in table.input_scales
    assert CalibrationTable.parse(table.to_text()).to_text() == table.to_text()
    assert sorted(x.strip() for x in table.to_text().splitlines()) == sorted(x.strip() for x in text.splitlines())
