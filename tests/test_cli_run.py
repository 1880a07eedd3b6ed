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


def two_input_model(folder):
    """An image input ``data`` and a vector input ``aux`` (4 values) added to the image's pooled features."""
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.builder import GraphBuilder
    from ncnnc.core.random_weights import fill_missing_weights

    b = GraphBuilder()
    x = b.layer("Convolution", [b.input("data", (3, 16, 16))], {0: 4, 1: 3, 5: 1, 6: 108})
    x = b.layer("Pooling", [x], {0: 1, 4: 1})
    b.layer("BinaryOp", [x, b.input("aux", (4,))], {0: 0})
    graph = b.build()
    fill_missing_weights(graph, seed=1)
    save(graph, folder / "two.param", folder / "two.bin")
    return [str(folder / "two.param"), str(folder / "two.bin")]


def test_multi_input_one_file_per_input_and_a_shape_each(image_paths, tmp_path, capsys):
    """A two-input model: INPUT files go one per --input for each run, shape=[..],[..] gives each input its
    shape (the image's size; the .npy's shape), the runtime agrees; a file count that does not divide fails."""
    model = two_input_model(tmp_path)
    files = []
    for i in range(2):
        np.save(tmp_path / f"aux{i}.npy", np.full(4, 10.0 * i, np.float32))
        files += [str(image_paths[0]), str(tmp_path / f"aux{i}.npy")]  # the same image, another aux
    opts = ["--input", "data", "--input", "aux", "shape=[16,16,3],[4]", "mean=[104,117,123]", "norm=[0.02,0.02,0.02]"]
    for backend in ("numpy", "ncnn"):
        saved = str(tmp_path / f"{backend}.npz")
        assert main(["run", *model, *files, *opts, "--backend", backend, "--save", saved]) == 0
    ours, ref = np.load(tmp_path / "numpy.npz"), np.load(tmp_path / "ncnn.npz")
    (out,) = list(ours)
    assert ours[out].shape == (2, 4)
    np.testing.assert_allclose(ours[out], ref[out], atol=1e-4)
    np.testing.assert_allclose(ours[out][1] - ours[out][0], 10.0, atol=1e-4)  # each run got its own aux
    assert f"{files[0]} + {files[1]}" in capsys.readouterr().out
    assert main(["run", *model, *files[:3], *opts]) == 2
    assert "3 INPUT file(s) for 2 inputs (data, aux)" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros(5, np.float32))
    assert main(["run", *model, files[0], str(tmp_path / "bad.npy"), *opts]) == 2
    assert "does not match the input blob" in capsys.readouterr().err
