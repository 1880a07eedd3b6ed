"""Malformed ncnn models end in one line naming the file and place, exit status 2, no output."""

from __future__ import annotations

import shutil

import pytest

from ncnnc.core.cli import main

GOOD = """7767517
3 3
Input            data   0 1 data 0=4 1=4 2=3
Convolution      conv   1 1 data conv 0=2 1=1 5=1 6=6
ReLU             relu   1 1 conv out
"""


def _write(tmp_path, param_text, bin_bytes=None):
    p = tmp_path / "m.param"
    p.write_text(param_text)
    b = tmp_path / "m.bin"
    b.write_bytes(bin_bytes if bin_bytes is not None else b"\0\0\0\0" + b"\0" * 24 + b"\0" * 8)
    return p, b


def _run_convert(capsys, tmp_path, p, b):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    rc = main(["convert", str(p), str(b), str(out / "o.param"), str(out / "o.bin")])
    err = capsys.readouterr().err
    return rc, err, sorted(x.name for x in out.iterdir())


def test_good_model_converts(tmp_path, capsys):
    p, b = _write(tmp_path, GOOD)
    rc, err, written = _run_convert(capsys, tmp_path, p, b)
    assert rc == 0 and err == "" and written == ["o.bin", "o.param"]


@pytest.mark.parametrize(("param_text", "bin_bytes", "expect"), [
    (GOOD.replace("7767517", "7767518"), None, "line 1: wrong magic number"),
    (GOOD.replace("3 3", "4 3"), None, "header declares 4 layers but the file has 3"),
    (GOOD.replace("3 3", "3 5"), None, "header declares 5 blobs"),
    (GOOD.replace("1 1 conv out", "1 1 nope out"), None, "line 5: layer relu reads blob 'nope'"),
    (GOOD.replace("0=2 1=1", "0=2 1=one"), None, "line 4: param value 'one' is not a number"),
    (GOOD.replace("0=2 1=1", "0=2 1"), None, "line 4: param '1' is not of the form id=value"),
    (GOOD.replace("ReLU             relu", "Mystery          relu"), b"\0" * 36 + b"\0" * 4,
     "line 5: unknown layer type 'Mystery' (neither ncnn's nor a registered plugin's)"),
    (GOOD, b"\0\0\0\0" + b"\0" * 20, "layer conv (weight): truncated"),
    (GOOD, b"\0\0\0\0" + b"\0" * 24 + b"\0" * 8 + b"\0" * 12, "12 bytes left after the last layer's weights"),
    # windows larger than the fixed input (found by bench/fuzz.py: a caffe pool kernel of 65536 converted, and
    # the runtime refused the model)
    (GOOD.replace("ReLU             relu   1 1 conv out", "Pooling          pool   1 1 conv out 1=9 2=1"), None,
     "layer pool: its 9x9 window (w x h) is larger than its padded input 4x4"),
    (GOOD.replace("0=2 1=1 5=1 6=6", "0=2 1=1 11=5 5=1 6=30"), b"\0" * (4 + 120 + 8),
     "layer conv: its 1x5 window (w x h) is larger than its padded input 4x4"),
])
def test_bad_model(tmp_path, capsys, param_text, bin_bytes, expect):
    p, b = _write(tmp_path, param_text, bin_bytes)
    rc, err, written = _run_convert(capsys, tmp_path, p, b)
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(p) in err or str(b) in err
    assert expect in err
    assert written == []


def test_missing_file(tmp_path, capsys):
    rc = main(["inspect", str(tmp_path / "absent.param")])
    err = capsys.readouterr().err
    assert rc == 2 and "absent.param" in err and err.count("\n") == 1


def test_failed_write_leaves_old_outputs_untouched(tmp_path, capsys, squeezenet_dir):
    """Outputs are written to temporaries and renamed: a failing run leaves what was there."""
    out_param, out_bin = tmp_path / "o.param", tmp_path / "o.bin"
    out_param.write_text("previous")
    shutil.copy(squeezenet_dir / "squeezenet_v1.1.param", tmp_path / "s.param")
    (tmp_path / "s.bin").write_bytes((squeezenet_dir / "squeezenet_v1.1.bin").read_bytes()[:-100])
    rc = main(["convert", str(tmp_path / "s.param"), str(tmp_path / "s.bin"), str(out_param), str(out_bin)])
    assert rc == 2
    assert out_param.read_text() == "previous" and not out_bin.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.param", "s.bin", "s.param"]
