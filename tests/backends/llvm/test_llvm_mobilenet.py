"""A MobileNet-V2-like int8 model (random weights, built here): inverted residual blocks with
depthwise convolutions, ReLU6 and residual adds, global pooling, InnerProduct, Softmax — through the
host JIT, against the numpy int8 simulation and the real ncnn runtime's int8 output.

Two of the three depthwise layers have a multiple of 8 channels: on x86, ncnn runs them with its pack-8
kernel, which dequantizes with the CPU's reciprocal estimate; the simulation and the JIT compute the same
(backends/numpy/cpu_family.py), so every convolution's output equals the runtime's.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder

from .harness import assert_matches, quantize_absmax, run_jit, simulate

RELU6 = {"activation_type": 3, "activation_params": [0.0, 6.0]}


def mobilenet_v2_like(rng: np.random.Generator):
    """The fp32 graph: stem, three inverted residual blocks (two with a residual add), head."""
    b = GraphBuilder()
    x = b.input("data", (3, 33, 31))

    def conv(src, cin, n, k=1, stride=1, group=1, act=RELU6):
        typ = "ConvolutionDepthWise" if group > 1 else "Convolution"
        size = n * cin // group * k * k
        params = {"num_output": n, "kernel_w": k, "stride_w": stride, "pad_left": k // 2, "bias_term": 1,
                  "weight_data_size": size, **(act or {})}
        if group > 1:
            params["group"] = group
        std = (2.0 / (cin // group * k * k)) ** 0.5
        return b.layer(typ, [src], params, {"weight": rng.normal(0, std, size), "bias": rng.normal(0, 0.1, n)},
                       name=f"conv{len(b.layers)}")

    def block(src, cin, cout, expand, stride):
        residual = stride == 1 and cin == cout
        if residual:
            src, skip = b.layer("Split", [src], outputs=2)
        hidden = cin * expand
        y = conv(src, cin, hidden)
        y = conv(y, hidden, hidden, k=3, stride=stride, group=hidden)
        y = conv(y, hidden, cout, act=None)
        return b.layer("BinaryOp", [skip, y], {"op_type": 0}, name=f"add{len(b.layers)}") if residual else y

    y = conv(x, 3, 16, k=3, stride=2)
    y = block(y, 16, 16, 3, 1)
    y = block(y, 16, 20, 3, 2)
    y = block(y, 20, 20, 3, 1)
    y = conv(y, 20, 44)
    y = b.layer("Pooling", [y], {"pooling_type": 1, "global_pooling": 1}, name="gap")
    y = b.layer("InnerProduct", [y], {"num_output": 10, "bias_term": 1, "weight_data_size": 440},
                {"weight": rng.normal(0, 0.3, 440), "bias": rng.normal(0, 0.1, 10)}, name="fc")
    b.layer("Softmax", [y], name="prob")
    return b.build()


def quantized_mobilenet(rng: np.random.Generator, calib: np.ndarray):
    """The int8 graph: weight scales 127/absmax per output channel, input scales 127/absmax of the fp32 blobs."""
    return quantize_absmax(mobilenet_v2_like(rng), [{"data": image} for image in calib], headroom=127)


def test_mobilenet_v2_like_int8_matches_simulation_and_runtime():
    rng = np.random.default_rng(11)
    images = rng.normal(0, 1, (10, 3, 33, 31)).astype(np.float32)
    graph = quantized_mobilenet(rng, images[:4])
    types = {layer.type for layer in graph.layers}
    assert {"ConvolutionDepthWise", "BinaryOp", "Pooling", "InnerProduct", "Softmax"} <= types
    blobs = [layer.outputs[0] for layer in graph.layers if layer.type in ("Convolution", "ConvolutionDepthWise")]
    sim_all = Interpreter(graph).run({"data": images}, [*blobs, "prob"])
    assert any(sim_all[b].dtype == np.int8 for b in blobs)  # requantized activations flow between layers
    depthwise = [layer for layer in graph.layers if layer.type == "ConvolutionDepthWise"]
    assert [layer.p("num_output") % 8 == 0 for layer in depthwise] == [True, True, False]
    for i, image in enumerate(images[4:]):
        want = simulate(graph, {"data": image})
        got = run_jit(graph, {"data": image})
        assert_matches(got, want, atol=1e-6)
        assert got["prob"].argmax() == want["prob"].argmax()
        real = run_graph(graph, {"data": image}, [*blobs, "prob"])
        assert_matches({b: real[b] for b in blobs}, {b: sim_all[b][4 + i].astype(np.float32) for b in blobs})
        assert got["prob"].argmax() == real["prob"].argmax()
        np.testing.assert_allclose(got["prob"], real["prob"].ravel(), atol=1e-4)
