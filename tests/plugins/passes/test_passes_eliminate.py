"""Dead-layer elimination: Dropout, 1x1 Pooling, Noop, Split, orphaned MemoryData, Flatten/Reshape."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.core.builder import GraphBuilder

C, H, W = 4, 5, 6


def rnd(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def conv(b: GraphBuilder, x: str, name: str | None = None) -> str:
    return b.layer("Convolution", [x], {0: C, 1: 1, 5: 1, 6: C * C}, {"weight": rnd(1, C * C), "bias": rnd(2, C)},
                   name=name)


def between(middle_type: str, params: dict | None = None, **kw) -> GraphBuilder:
    """Input -> Convolution -> <middle> -> TanH."""
    b = GraphBuilder()
    x = b.layer(middle_type, [conv(b, b.input("data", (C, H, W)), name="conv")], params or {}, name="mid", **kw)
    b.layer("TanH", [x], name="tanh")
    return b


@pytest.mark.parametrize(("ltype", "params", "name"), [
    ("Dropout", {}, "eliminate_dropout"),
    ("Pooling", {0: 0, 1: 1, 2: 1}, "eliminate_pooling1x1"),
    ("Pooling", {0: 1, 1: 1, 2: 1}, "eliminate_pooling1x1"),
    ("Noop", {}, "eliminate_noop"),
    ("Split", {}, "eliminate_split"),
])
def test_pass_through_layer_removed(ltype, params, name, optimized, types):
    after, _ = optimized(between(ltype, params).build(), only=[name])
    assert types(after) == {"Input": 1, "Convolution": 1, "TanH": 1}
    assert after.layer("conv").outputs == ["mid"], "the producer takes the removed layer's blob name (ncnn)"


@pytest.mark.parametrize(("ltype", "params", "name"), [
    ("Dropout", {0: 0.5}, "eliminate_dropout"),
    ("Pooling", {0: 0, 1: 1, 2: 2}, "eliminate_pooling1x1"),
    ("Pooling", {0: 0, 1: 1, 2: 1, 3: 1}, "eliminate_pooling1x1"),
    ("Pooling", {0: 1, 7: 1, 8: 3, 18: 2}, "eliminate_pooling1x1"),
])
def test_working_layer_left_alone(ltype, params, name, optimized, types):
    after, report = optimized(between(ltype, params).build(), only=[name])
    assert types(after)[ltype] == 1 and not report.passes.changes


def test_input_and_output_names_survive(optimized, types):
    b = GraphBuilder()
    x = b.layer("Dropout", [b.input("data", (C, H, W))], name="drop1")
    b.layer("Dropout", [b.layer("TanH", [x])], name="drop2")
    after, _ = optimized(b.build(), only=["eliminate_dropout"])
    assert types(after) == {"Input": 1, "TanH": 1}
    assert after.layers[1].inputs == ["data"] and after.outputs == ["drop2"]


def test_dropout_between_input_and_output_left_alone(optimized, types):
    b = GraphBuilder()
    b.layer("Dropout", [b.input("data", (C, H, W))])
    after, report = optimized(b.build(), only=["eliminate_dropout"])
    assert types(after)["Dropout"] == 1 and not report.passes.changes


def test_split_with_two_used_outputs_left_alone(optimized, types):
    b = GraphBuilder()
    s0, s1 = b.layer("Split", [conv(b, b.input("data", (C, H, W)))], outputs=2)
    b.layer("Eltwise", [b.layer("TanH", [s0]), b.layer("Sigmoid", [s1])], {0: 1})
    after, report = optimized(b.build(), only=["eliminate_split"])
    assert types(after)["Split"] == 1 and not report.passes.changes


def test_split_with_one_used_output_removed(optimized, types):
    b = GraphBuilder()
    _s0, s1, _s2 = b.layer("Split", [conv(b, b.input("data", (C, H, W)))], outputs=3)
    b.layer("TanH", [s1])
    after, _ = optimized(b.build(), only=["eliminate_split"])
    assert types(after) == {"Input": 1, "Convolution": 1, "TanH": 1}


def test_noop_without_inputs(optimized, types):
    b = GraphBuilder()
    b.layer("Noop", [], outputs=1)
    b.layer("TanH", [b.input("data", (C, H, W))])
    graph = b.build()
    graph.explicit_outputs = ["tanh_2"]
    after, _ = optimized(graph, only=["eliminate_noop"])
    assert types(after) == {"Input": 1, "TanH": 1}


def test_noop_with_two_inputs_left_alone(optimized, types):
    b = GraphBuilder()
    s0, s1 = b.layer("Split", [b.input("data", (C, H, W))], outputs=2)
    b.layer("Noop", [s0, s1], outputs=2)
    after, report = optimized(b.build(), only=["eliminate_noop"])
    assert types(after)["Noop"] == 1 and not report.passes.changes


def test_orphaned_memorydata(optimized, types):
    b = GraphBuilder()
    b.layer("MemoryData", [], {"w": 3}, {"data": rnd(0, 3)})
    used = b.layer("MemoryData", [], {"w": W}, {"data": rnd(1, W)})
    b.layer("BinaryOp", [b.input("data", (C, H, W)), used], {0: 0})
    after, report = optimized(b.build(), only=["eliminate_orphaned_memorydata"])
    assert types(after) == {"Input": 1, "MemoryData": 1, "BinaryOp": 1}
    assert report.passes.counts() == {"eliminate_orphaned_memorydata": 1}


def global_pooling_then(ltype: str, params: dict | None = None, global_pooling: int = 1) -> GraphBuilder:
    b = GraphBuilder()
    pooling = {0: 1, 4: 1} if global_pooling else {0: 1, 1: 2, 2: 2}
    x = b.layer("Pooling", [conv(b, b.input("data", (C, H, W)))], pooling, name="pool")
    b.layer("Softmax", [b.layer(ltype, [x], params or {}, name="mid")], name="prob")
    return b


@pytest.mark.parametrize(("ltype", "params", "name"), [
    ("Flatten", {}, "eliminate_flatten_after_global_pooling"),
    ("Reshape", {0: -1}, "eliminate_reshape_after_global_pooling"),
    ("Reshape", {0: C}, "eliminate_reshape_after_global_pooling"),
])
def test_flatten_reshape_after_global_pooling(ltype, params, name, optimized, types):
    after, _ = optimized(global_pooling_then(ltype, params).build(), only=[name])
    assert types(after) == {"Input": 1, "Convolution": 1, "Pooling": 1, "Softmax": 1}
    assert after.layer("pool").outputs == ["mid"]


@pytest.mark.parametrize(("ltype", "params", "global_pooling"), [
    ("Flatten", {}, 0), ("Reshape", {0: 2, 1: 2}, 1), ("Reshape", {0: -1}, 0)])
def test_flatten_reshape_that_reshape_left_alone(ltype, params, global_pooling, optimized, types):
    graph = global_pooling_then(ltype, params, global_pooling).build()
    after, report = optimized(graph, only=["eliminate_flatten_after_global_pooling",
                                           "eliminate_reshape_after_global_pooling"])
    assert types(after)[ltype] == 1 and not report.passes.changes


@pytest.mark.parametrize(("in_shape", "removed"), [((C, H, W), True), ((H, W), False)])
def test_flatten_after_innerproduct(in_shape, removed, optimized, types):
    """A Flatten after a 1-D InnerProduct goes; after a 2-D (per-row) InnerProduct it stays."""
    b = GraphBuilder()
    k = int(np.prod(in_shape)) if len(in_shape) == 3 else in_shape[-1]
    x = b.layer("InnerProduct", [b.input("data", in_shape)], {0: 3, 1: 1, 2: 3 * k},
                {"weight": rnd(3, 3 * k), "bias": rnd(4, 3)})
    b.layer("TanH", [b.layer("Flatten", [x])])
    after, report = optimized(b.build(), only=["eliminate_flatten_after_innerproduct"])
    assert types(after)["Flatten"] == (0 if removed else 1)
    assert bool(report.passes.changes) == removed


@pytest.mark.parametrize("slot", [0, 1])
def test_reshape_before_binaryop(slot, optimized, types):
    b = GraphBuilder()
    a, v = b.layer("Split", [conv(b, b.input("data", (C, H, W)))], outputs=2)
    vec = b.layer("Pooling", [v], {0: 1, 4: 1})
    r = b.layer("Reshape", [vec], {0: 1, 1: 1, 2: -1})
    b.layer("BinaryOp", [r, a] if slot == 0 else [a, r], {0: 2})
    after, _ = optimized(b.build(), only=["eliminate_reshape_before_binaryop"])
    assert types(after)["Reshape"] == 0


def test_reshape_before_binaryop_with_1d_operand_left_alone(optimized, types):
    b = GraphBuilder()
    a, v = b.layer("Split", [b.layer("InnerProduct", [b.input("data", (C, H, W))], {0: C, 2: C * C * H * W},
                                     {"weight": rnd(5, C * C * H * W)})], outputs=2)
    r = b.layer("Reshape", [v], {0: 1, 1: 1, 2: -1})
    b.layer("BinaryOp", [a, r], {0: 0})
    after, report = optimized(b.build(), only=["eliminate_reshape_before_binaryop"])
    assert types(after)["Reshape"] == 1 and not report.passes.changes
