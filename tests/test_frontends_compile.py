"""`ncnnc compile` from the shared Caffe and ONNX SqueezeNet gives the very int8 model the ncnn one gives."""

from __future__ import annotations

import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.core.cli import main
from ncnnc.core.preprocess import load_image, substract_mean_normalize

PREPROCESSING = ["mean=[104,117,123]", "norm=[1,1,1]", "shape=[227,227,3]", "pixel=BGR", "method=kl"]


@pytest.fixture(scope="module")
def calib_list(image_paths, tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.txt"
    path.write_text("".join(f"{p}\n" for p in image_paths[:6]))
    return path


def _compile(model_files, calib_list, out):
    rc = main(["compile", *map(str, model_files), "--int8", "--calib", str(calib_list), *PREPROCESSING,
               "-o", str(out)])
    assert rc == 0
    return (out / "model.bin").read_bytes()


def test_caffe_and_onnx_compile_to_the_ncnn_result(squeezenet_dir, calib_list, tmp_path, image_paths):
    d = squeezenet_dir
    from_ncnn = _compile([d / "squeezenet_v1.1.param", d / "squeezenet_v1.1.bin"], calib_list, tmp_path / "ncnn")
    from_caffe = _compile([d / "squeezenet_v1.1.prototxt", d / "squeezenet_v1.1.caffemodel"], calib_list,
                          tmp_path / "caffe")
    from_onnx = _compile([d / "squeezenet_v1.1.onnx"], calib_list, tmp_path / "onnx")
    assert from_caffe == from_ncnn
    assert from_onnx == from_ncnn
    # and the ONNX-born int8 model runs in the real runtime under the ONNX blob names
    x = substract_mean_normalize(load_image(image_paths[0], pixel="BGR", shape=(227, 227, 3)), [104, 117, 123], None)
    net = RuntimeNet(tmp_path / "onnx" / "model.param", tmp_path / "onnx" / "model.bin")
    prob = net.run({"data": x}, ["prob"])["prob"]
    assert prob.shape == (1000,) and abs(float(prob.sum()) - 1) < 1e-3
