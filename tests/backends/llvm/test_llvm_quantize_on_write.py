"""Quantize on write: float blobs read only by int8 layers of one input scale are written as int8 by
their producers (through Split, Concat and max Pooling), bit-identical to the simulation."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.llvm.lower import Lowerer
from ncnnc.backends.llvm.quantize_on_write import plan_quantize_on_write
from ncnnc.backends.llvm.targets import resolve
from ncnnc.core.builder import GraphBuilder
from ncnnc.frontends.ncnn import load

from .harness import assert_matches, quantize_absmax, run_jit, simulate


def test_squeezenet_fire_outputs_are_written_as_int8(squeezenet_dir):
    ref = squeezenet_dir / "ncnn-reference"
    graph = load(ref / "squeezenet_v1.1-int8-kl.param", ref / "squeezenet_v1.1-int8-kl.bin")
    scales = plan_quantize_on_write(graph)
    expands = [layer.outputs[0] for layer in graph.layers if "expand" in layer.name]
    assert expands and set(expands) <= set(scales)
    assert "conv1_relu_conv1" in scales  # conv1 -> pool1 -> fire2/squeeze1x1
    assert "conv10_relu_conv10" not in scales  # read by average pooling
    lw = Lowerer(graph, resolve("host"))
    program = lw.lower()
    assert lw.views["pool3"].dtype == "i8" and lw.views["fire9/concat_drop9"].dtype == "i8"
    assert not [s for s in program.steps if s.kind == "convert"]


def _int8(graph, rng, shape):
    return quantize_absmax(graph, [{"data": rng.normal(0, 1, shape).astype(np.float32)}], headroom=90)


def _conv(b, rng, src, cin, n, k, name, act=1):
    size = n * cin * k * k
    return b.layer("Convolution", [src], {"num_output": n, "kernel_w": k, "pad_left": k // 2, "bias_term": 1,
                                          "weight_data_size": size, "activation_type": act},
                   {"weight": rng.normal(0, 0.3, size), "bias": rng.normal(0, 0.3, n)}, name=name)


def test_region_through_pool_and_concat_is_bit_identical():
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("data", (5, 15, 13))
    s1, s2 = b.layer("Split", [x], outputs=2)
    a = b.layer("Pooling", [_conv(b, rng, s1, 5, 7, 3, "a", act=0)],
                {"kernel_w": 3, "stride_w": 2, "pad_mode": 2}, name="pool_a")
    c = b.layer("Pooling", [_conv(b, rng, s2, 5, 9, 1, "c")],
                {"kernel_w": 3, "stride_w": 2, "pad_left": 1, "pad_mode": 1}, name="pool_c")
    cat = b.layer("Concat", [a, c], name="cat")
    _conv(b, rng, cat, 16, 6, 3, "out", act=0)
    graph = _int8(b.build(), rng, (5, 15, 13))
    scales = plan_quantize_on_write(graph)
    assert set(scales) == {"a", "c"} and len(set(scales.values())) == 1
    for _ in range(3):
        data = {"data": rng.normal(0, 1.5, (5, 15, 13)).astype(np.float32)}
        assert_matches(run_jit(graph, data), simulate(graph, data))


def test_not_written_as_int8_when_a_reader_is_float_or_scales_differ():
    rng = np.random.default_rng(4)
    b = GraphBuilder()
    x = b.input("data", (4, 9, 9))
    s1, s2 = b.layer("Split", [_conv(b, rng, x, 4, 6, 3, "two_scales")], outputs=2)
    _conv(b, rng, s1, 6, 3, 1, "r1")
    _conv(b, rng, b.layer("ReLU", [s2], name="relu"), 6, 3, 1, "r2")
    graph = _int8(b.build(), rng, (4, 9, 9))
    assert plan_quantize_on_write(graph) == {}
    data = {"data": rng.normal(0, 1.5, (4, 9, 9)).astype(np.float32)}
    assert_matches(run_jit(graph, data), simulate(graph, data))
