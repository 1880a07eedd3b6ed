"""``ncnnc run``: images and .npy inputs, both backends, --save/--labels/--top, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.core.cli import main


@pytest.fixture(scope="module")
def model(squeezenet_dir):
    return [str(squeezenet_dir / "squeezenet_v1.1.param"), str(squeezenet_dir / "squeezenet_v1.1.bin")]


def test_images_both_backends_agree(model, image_paths, synset_words, tmp_path, capsys):
    images = [str(p) for p in image_paths[:3]]
    opts = ["mean=[104,117,123]", "shape=[227,227,3]", "pixel=BGR"]
    assert main(["run", *model, *images, *opts, "--save", str(tmp_path / "np.npz"),
                 "--labels", str(synset_words), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("  1. ") == 3 and "tench" in out
    assert main(["run", *model, *images, *opts, "--backend", "ncnn", "--save", str(tmp_path / "nc.npz")]) == 0
    ours, ref = np.load(tmp_path / "np.npz"), np.load(tmp_path / "nc.npz")
    assert list(ours) == ["prob"] and ours["prob"].shape == (3, 1000)
    np.testing.assert_allclose(ours["prob"], ref["prob"], atol=1e-5)


def test_npy_input_and_named_blobs(model, tmp_path, capsys):
    x = np.random.default_rng(0).normal(0, 50, (3, 227, 227)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["run", *model, str(tmp_path / "x.npy"), "--input", "data", "--output", "pool10", "--output", "prob",
            "--save", str(tmp_path / "o.npz")]
    assert main(args) == 0
    saved = np.load(tmp_path / "o.npz")
    assert set(saved) == {"pool10", "prob"} and saved["prob"].shape == (1, 1000)
    assert "pool10" in capsys.readouterr().out


@pytest.mark.parametrize("case,message", [
    ("broken_image", "cannot decode image"),
    ("wrong_dtype", "expected a float32 array"),
    ("wrong_shape", "does not match the input blob"),
    ("unknown_blob", "no blob named 'nope'"),
    ("bad_option", "expected a list of numbers"),
])
def test_bad_input_one_line_exit_2(model, tmp_path, capsys, case, message):
    path = tmp_path / "in.npy"
    extra: list[str] = []
    if case == "broken_image":
        path = tmp_path / "broken.jpg"
        path.write_bytes(b"\xff\xd8\xff garbage")
    elif case == "wrong_dtype":
        np.save(path, np.zeros((3, 227, 227), np.float64))
    elif case == "wrong_shape":
        np.save(path, np.zeros((3, 224, 224), np.float32))
    else:
        np.save(path, np.zeros((3, 227, 227), np.float32))
        extra = ["--output", "nope"] if case == "unknown_blob" else ["mean=[a,b]"]
    out_npz = tmp_path / "out.npz"
    assert main(["run", *model, str(path), *extra, "--save", str(out_npz)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ncnnc run: error: ") and message in err[0]
    if case in ("broken_image", "wrong_dtype", "wrong_shape"):
        assert str(path) in err[0]
    assert not out_npz.exists()
