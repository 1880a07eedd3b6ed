"""The shared Caffe SqueezeNet converts to what caffe2ncnn writes, and runs like the shared ncnn model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import bin_bytes
from ncnnc.core.cli import main
from ncnnc.core.frontend import load_model
from ncnnc.frontends import ncnn as ncnn_frontend
from ncnnc.frontends.caffe import load


@pytest.fixture(scope="module")
def caffe_graph(squeezenet_dir: Path):
    return load(squeezenet_dir / "squeezenet_v1.1.prototxt", squeezenet_dir / "squeezenet_v1.1.caffemodel")


def test_bin_is_byte_identical_to_caffe2ncnn(caffe_graph, squeezenet_dir: Path) -> None:
    assert bin_bytes(caffe_graph) == (squeezenet_dir / "squeezenet_v1.1.bin").read_bytes()


def test_param_has_the_same_layers_blobs_and_params(caffe_graph, squeezenet_dir: Path) -> None:
    ref = ncnn_frontend.load(squeezenet_dir / "squeezenet_v1.1.param")
    got = [(layer.type, layer.name, layer.inputs, layer.outputs, layer.params.values) for layer in caffe_graph]
    want = [(layer.type, layer.name, layer.inputs, layer.outputs, layer.params.values) for layer in ref]
    assert got == want
    assert caffe_graph.inputs == ["data"]
    assert caffe_graph.outputs == ["prob"]


def _image(path: Path) -> np.ndarray:
    import ncnn

    bgr = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1])
    h, w = bgr.shape[:2]
    mat = ncnn.Mat.from_pixels_resize(bgr, ncnn.Mat.PixelType.PIXEL_BGR, w, h, 227, 227)
    mat.substract_mean_normalize([104.0, 117.0, 123.0], [])
    return np.array(mat, dtype=np.float32, copy=True)


def test_cli_convert_runs_like_the_shared_ncnn_model(squeezenet_dir: Path, image_paths: list[Path],
                                                      tmp_path: Path) -> None:
    out_param, out_bin = tmp_path / "sq.param", tmp_path / "sq.bin"
    rc = main(["convert", str(squeezenet_dir / "squeezenet_v1.1.prototxt"),
               str(squeezenet_dir / "squeezenet_v1.1.caffemodel"), str(out_param), str(out_bin)])
    assert rc == 0
    assert out_bin.read_bytes() == (squeezenet_dir / "squeezenet_v1.1.bin").read_bytes()
    converted = RuntimeNet(out_param, out_bin)
    reference = RuntimeNet(squeezenet_dir / "squeezenet_v1.1.param", squeezenet_dir / "squeezenet_v1.1.bin")
    for path in image_paths[::125]:
        x = _image(path)
        got = converted.run({"data": x}, ["prob"])["prob"]
        want = reference.run({"data": x}, ["prob"])["prob"]
        assert got.shape == want.shape == (1000,)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_load_model_dispatches_to_the_caffe_frontend(squeezenet_dir: Path) -> None:
    graph = load_model([str(squeezenet_dir / "squeezenet_v1.1.prototxt"),
                        str(squeezenet_dir / "squeezenet_v1.1.caffemodel")], shape="[100,120,3]")
    assert graph.layer("data").params.values == {0: 100, 1: 120, 2: 3}
    assert len(graph) == 75
