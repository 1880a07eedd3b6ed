"""Every kernel family as armv8 code under qemu-aarch64: the object cross-linked with the C driver gives
the host JIT's outputs bit for bit and, like the JIT, the numpy simulation's (exactly, or within the
documented ``expf``/``tanhf`` tolerance).  The convolution family has its own armv8 cases in
``test_llvm_conv.py``; whole models in ``test_llvm_squeezenet.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.llvm.build import build
from ncnnc.backends.llvm.jit import jit
from ncnnc.backends.llvm.native import run_native
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Graph, Weight

from .harness import assert_matches, simulate

TRANSCENDENTAL = ("sigmoid", "swish", "tanh", "softmax")
"""Outputs computed with expf/tanhf: numpy's own SIMD versions, and the C libraries of the two
architectures (tanhf), may differ by a few ulp."""

SUM_ORDER = ("fc_fp32",)
"""fp32 sums in another order than numpy's BLAS (the same order on both architectures)."""


def _split(outputs: dict[str, np.ndarray], prefixes: tuple[str, ...]) -> tuple[dict, dict]:
    """``(outputs not named by a prefix, outputs that are)``."""
    inexact = {k: v for k, v in outputs.items() if k.startswith(prefixes)}
    return {k: v for k, v in outputs.items() if k not in inexact}, inexact


def _raw(values) -> Weight:
    return Weight(np.asarray(values, np.float32), "raw")


def pooling_graph() -> Graph:
    b = GraphBuilder()
    x = b.input("data", (19, 13, 11))
    parts = b.layer("Split", [x], outputs=5)
    b.layer("Pooling", [parts[0]], {"pooling_type": 0, "kernel_w": 3, "stride_w": 2}, name="max_full")
    b.layer("Pooling", [parts[1]], {"pooling_type": 1, "kernel_w": 3, "stride_w": 2, "pad_left": 1, "pad_mode": 1},
            name="avg_valid")
    b.layer("Pooling", [parts[2]], {"pooling_type": 1, "kernel_w": 2, "stride_w": 1, "pad_left": 1,
                                    "avgpool_count_include_pad": 1}, name="avg_pad")
    b.layer("Pooling", [parts[3]], {"pooling_type": 0, "kernel_w": 3, "stride_w": 2, "pad_mode": 2}, name="max_same")
    b.layer("Pooling", [parts[4]], {"pooling_type": 1, "global_pooling": 1}, name="gap")
    return b.build()


def elementwise_graph() -> Graph:
    b = GraphBuilder()
    x = b.input("data", (13, 7, 5))
    y = b.input("per_channel", (13, 1, 1))
    parts = b.layer("Split", [x], outputs=9)
    b.layer("ReLU", [parts[0]], {"slope": 0.1}, name="leaky")
    b.layer("Clip", [parts[1]], {"min": -0.5, "max": 0.7}, name="clip")
    b.layer("Sigmoid", [parts[2]], name="sigmoid")
    b.layer("Swish", [parts[3]], name="swish")
    b.layer("HardSwish", [parts[4]], name="hardswish")
    b.layer("TanH", [parts[5]], name="tanh")
    b.layer("BinaryOp", [parts[6], y], {"op_type": 3}, name="div_broadcast")
    b.layer("BinaryOp", [parts[7]], {"op_type": 2, "with_scalar": 1, "b": 1.7}, name="mul_scalar")
    b.layer("Eltwise", [parts[8], b.layer("HardSigmoid", [b.input("other", (13, 7, 5))], name="hardsigmoid_in")],
            {"op_type": 1, "coeffs": [0.5, -2.0]}, name="eltwise_sum")
    return b.build()


def dense_graph(rng: np.random.Generator) -> Graph:
    """InnerProduct (fp32 and int8), Softmax, Slice, ShuffleChannel, Reshape, Flatten, Quantize/Requantize."""
    b = GraphBuilder()
    x = b.input("data", (12, 5, 3))
    parts = b.layer("Split", [x], outputs=5)
    b.layer("InnerProduct", [parts[0]], {"num_output": 11, "bias_term": 1, "weight_data_size": 11 * 180,
                                         "activation_type": 1},
            {"weight": rng.normal(0, 0.1, 11 * 180), "bias": rng.normal(0, 0.1, 11)}, name="fc_fp32")
    b.layer("InnerProduct", [parts[1]], {"num_output": 7, "bias_term": 1, "weight_data_size": 7 * 180,
                                         "int8_scale_term": 2},
            {"weight": Weight(rng.integers(-127, 128, (7, 180)).astype(np.int8), "int8"),
             "bias": rng.normal(0, 0.1, 7), "weight_int8_scales": _raw(rng.uniform(50, 90, 7)),
             "bottom_int8_scales": _raw([40.0])}, name="fc_int8")
    b.layer("Softmax", [parts[2]], {"axis": 0}, name="softmax")
    s0, s1 = b.layer("Slice", [b.layer("ShuffleChannel", [parts[3]], {"group": 3}, name="shuffle")],
                     {"slices": [5, -233], "axis": 0}, outputs=2, name="slice")
    b.layer("Flatten", [s0], name="flatten")
    b.layer("Reshape", [s1], {"w": 5, "h": 21}, name="reshape")
    q = b.layer("Quantize", [parts[4]], {"scale_data_size": 1}, {"scale": _raw([9.5])}, name="quantize")
    b.layer("Dequantize", [q], {"scale_data_size": 1}, {"scale": _raw([0.1])}, name="dequantize")
    return b.build()


GRAPHS = {"pooling": lambda rng: pooling_graph(), "elementwise": lambda rng: elementwise_graph(),
          "dense": dense_graph}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_family_on_armv8_equals_host_and_simulation(name, require_cross):
    require_cross()
    rng = np.random.default_rng(len(name))
    graph = GRAPHS[name](rng)
    inputs = []
    for _ in range(3):
        sets = {}
        for layer in graph.layers:
            if layer.type == "Input":
                shape = graph.shapes.get(layer.outputs[0]) or tuple(
                    v for v in (layer.p("c"), layer.p("h"), layer.p("w")) if v > 0)
                sets[layer.outputs[0]] = rng.normal(0, 2, shape).astype(np.float32)
        inputs.append(sets)
    host = jit(graph, use_cache=False)
    native = run_native(build(graph, "armv8", use_cache=False), inputs)
    for sets, got in zip(inputs, native):
        exact, inexact = _split(host(sets), TRANSCENDENTAL)
        assert_matches({k: got[k] for k in exact}, exact)
        assert_matches({k: got[k] for k in inexact}, inexact, rtol=1e-6, atol=1e-7)
        exact, inexact = _split(simulate(graph, sets), TRANSCENDENTAL + SUM_ORDER)
        assert_matches({k: got[k] for k in exact}, exact)
        assert_matches({k: got[k] for k in inexact}, inexact, rtol=1e-5, atol=1e-6)
