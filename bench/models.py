"""Benchmark models built in code: an EfficientNet-Lite0-like classifier as an ONNX model.

``efficientnet_lite0_like()`` follows EfficientNet-Lite0's layout (no squeeze-excitation, ReLU6, fixed stem and
head): a 3x3 stride-2 stem convolution to 32 channels, then MBConv blocks (1x1 expansion + ReLU6, depthwise
3x3 or 5x5 + ReLU6, linear 1x1 projection, residual Add when stride is 1 and the width is unchanged) with
EfficientNet-B0's stage widths, kernels, strides and repeats, then a 1x1 head to 1280 channels + ReLU6,
global average pooling, a 1000-way Gemm and Softmax.  Input ``data`` is ``(1, 3, 224, 224)``, output ``prob``;
about 385 M MACs.  ReLU6 is ONNX ``Clip(0, 6)``.  There is no BatchNorm: convolutions carry biases.  Weights
are deterministic random (``seed``) with He-style scales (``sqrt(2 / fan_in)``, ``sqrt(1 / fan_in)`` for the
linear projections and the classifier) and small biases, so that activations stay in ReLU6's range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
"""EfficientNet-Lite0's MBConv stages: (expand ratio, kernel, first stride, output channels, repeats)."""


class _Builder:
    """Nodes and initializers of the graph under construction, and the random source of its weights."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = [numpy_helper.from_array(np.array(0, np.float32), "zero"),
                                              numpy_helper.from_array(np.array(6, np.float32), "six")]

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv(self, name: str, x: str, cin: int, cout: int, k: int = 1, stride: int = 1, depthwise: bool = False,
             relu6: bool = True) -> str:
        """Conv (+ ReLU6) with symmetric ``k // 2`` padding; He-scaled weights when activated."""
        group = cin if depthwise else 1
        fan_in = (cin // group) * k * k
        std = np.sqrt((2.0 if relu6 else 1.0) / fan_in)
        w = self.const(f"{name}.w", self.rng.normal(0.0, std, (cout, cin // group, k, k)))
        b = self.const(f"{name}.b", self.rng.normal(0.0, 0.1, cout))
        out = f"{name}.out" if relu6 else name
        self.nodes.append(helper.make_node("Conv", [x, w, b], [out], name=name, kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[k // 2] * 4, group=group))
        if relu6:
            self.nodes.append(helper.make_node("Clip", [out, "zero", "six"], [name], name=f"{name}.relu6"))
        return name


def efficientnet_lite0_like(seed: int = 0) -> onnx.ModelProto:
    """The EfficientNet-Lite0-like classifier (opset 13), checked by ``onnx.checker``."""
    g = _Builder(seed)
    x = g.conv("stem", "data", 3, 32, 3, 2)
    cin = 32
    for s, (expand, k, stride, cout, repeats) in enumerate(STAGES):
        for r in range(repeats):
            name, block_in = f"s{s}b{r}", x
            step = stride if r == 0 else 1
            mid = cin * expand
            if expand != 1:
                x = g.conv(f"{name}.expand", x, cin, mid)
            x = g.conv(f"{name}.dw", x, mid, mid, k, step, depthwise=True)
            x = g.conv(f"{name}.project", x, mid, cout, relu6=False)
            if step == 1 and cin == cout:
                g.nodes.append(helper.make_node("Add", [x, block_in], [f"{name}.add"], name=f"{name}.add"))
                x = f"{name}.add"
            cin = cout
    x = g.conv("head", x, cin, 1280)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flat", axis=1))
    fc_w = g.const("fc.w", g.rng.normal(0.0, np.sqrt(1.0 / 1280), (1000, 1280)))
    fc_b = g.const("fc.b", g.rng.normal(0.0, 0.1, 1000))
    g.nodes.append(helper.make_node("Gemm", ["flat", fc_w, fc_b], ["logits"], name="fc", transB=1))
    g.nodes.append(helper.make_node("Softmax", ["logits"], ["prob"], name="prob", axis=1))
    graph = helper.make_graph(g.nodes, "efficientnet_lite0_like",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1000])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="ncnnc-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_efficientnet_lite0_like(path: str | Path, seed: int = 0) -> Path:
    """Write the model to ``path`` (an ``.onnx`` file); returns the path."""
    onnx.save(efficientnet_lite0_like(seed), str(path))
    return Path(path)
