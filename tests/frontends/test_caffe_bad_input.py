"""Bad Caffe input: one line naming the file and the place, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncnnc.core.cli import main
from ncnnc.frontends.caffe_reader import caffe_pb


def _convert(capsys, tmp_path: Path, *inputs: Path) -> str:
    out_param, out_bin = tmp_path / "out.param", tmp_path / "out.bin"
    rc = main(["convert", *map(str, inputs), str(out_param), str(out_bin)])
    err = capsys.readouterr().err
    assert rc == 2
    assert not out_param.exists() and not out_bin.exists()
    assert err.count("\n") == 1 and err.startswith("ncnnc convert: error: "), err
    assert "Traceback" not in err
    return err


@pytest.fixture()
def sq(squeezenet_dir: Path) -> tuple[Path, Path]:
    return squeezenet_dir / "squeezenet_v1.1.prototxt", squeezenet_dir / "squeezenet_v1.1.caffemodel"


def test_truncated_caffemodel(capsys, tmp_path: Path, sq) -> None:
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(sq[1].read_bytes()[:2_000_001])
    err = _convert(capsys, tmp_path, sq[0], cut)
    assert f"{cut}: not a valid caffemodel" in err and "truncated" in err


def test_empty_caffemodel(capsys, tmp_path: Path, sq) -> None:
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    assert "holds no layers" in _convert(capsys, tmp_path, sq[0], empty)


def test_prototxt_syntax_error_names_the_line(capsys, tmp_path: Path, sq) -> None:
    lines = sq[0].read_text().splitlines()
    assert lines[13].strip() == "convolution_param {"
    lines[13] = "  convolution_param {{"
    bad = tmp_path / "bad.prototxt"
    bad.write_text("\n".join(lines))
    err = _convert(capsys, tmp_path, bad, sq[1])
    assert f"{bad}: line 14: syntax error" in err


def test_prototxt_not_utf8(capsys, tmp_path: Path, sq) -> None:
    bad = tmp_path / "bin.prototxt"
    bad.write_bytes(b'name: "x"\n\xff\xfe\n')
    assert "line 2: not a text prototxt" in _convert(capsys, tmp_path, bad, sq[1])


@pytest.mark.parametrize("which", [0, 1])
def test_missing_file(capsys, tmp_path: Path, sq, which: int) -> None:
    paths = list(sq)
    paths[which] = tmp_path / ("nope.prototxt", "nope.caffemodel")[which]
    err = _convert(capsys, tmp_path, *paths)
    assert f"{paths[which]}: cannot read: No such file or directory" in err


def _tiny(tmp_path: Path, body: str, blobs: dict[str, int] | None = None) -> tuple[Path, Path]:
    prototxt = tmp_path / "t.prototxt"
    prototxt.write_text('layer { name: "data" type: "Input" top: "data" '
                        'input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }\n' + body)
    model = caffe_pb()["NetParameter"]()
    model.layer.add(name="data")
    for name, count in (blobs or {}).items():
        blob = model.layer.add(name=name).blobs.add()
        blob.shape.dim.append(count)
        blob.data.extend([0.5] * count)
    caffemodel = tmp_path / "t.caffemodel"
    caffemodel.write_bytes(model.SerializeToString())
    return prototxt, caffemodel


CONV = ('layer { name: "c" type: "Convolution" bottom: "data" top: "x" '
        'convolution_param { num_output: 2 kernel_size: 1 } }')


@pytest.mark.parametrize(("body", "blobs", "message"), [
    ('layer { name: "l1" type: "SoftmaxWithLoss" bottom: "data" top: "x" }', None,
     "t.prototxt: layer l1: Caffe layer type 'SoftmaxWithLoss' is not supported"),
    (CONV, None, "t.caffemodel: layer c: the caffemodel has no blob #0 (weights)"),
    (CONV, {"c": 4}, "t.caffemodel: layer c: the caffemodel has no blob #1 (bias)"),
    ('layer { name: "e" type: "Eltwise" bottom: "data" bottom: "data" top: "x" eltwise_param { coeff: 1 } }', None,
     "t.prototxt: layer e: 1 coefficients for 2 inputs"),
    ('layer { name: "fc" type: "InnerProduct" bottom: "data" top: "x" inner_product_param { num_output: 2 } }',
     {"fc": 5}, "t.caffemodel: layer fc: weight blob of 5 values does not fit num_output 2"),
    ('layer { name: "r" type: "ReLU" bottom: "nothing" top: "x" }', None,
     "t.prototxt: layer r: bottom blob 'nothing' is not produced by an earlier layer"),
    ('layer { name: "cr" type: "Crop" bottom: "data" bottom: "data" top: "x" crop_param { axis: 3 } }', None,
     "t.prototxt: layer cr: Crop: axis 3 (only 1 and 2) is not supported"),
    ('layer { name: "p" type: "Pooling" bottom: "data" top: "x" pooling_param { pool: STOCHASTIC kernel_size: 2 } }',
     None, "layer p: Pooling: STOCHASTIC pooling is not supported"),
    ('layer { name: "sm" type: "Softmax" bottom: "data" top: "x" softmax_param { axis: 0 } }', None,
     "layer sm: Softmax: an operation along the batch axis is not supported"),
])
def test_unconvertible_layers(capsys, tmp_path: Path, body: str, blobs, message: str) -> None:
    assert message in _convert(capsys, tmp_path, *_tiny(tmp_path, body, blobs))
