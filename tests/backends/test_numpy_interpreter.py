"""The numpy interpreter's contract: batching, requested/observed blobs, early freeing, errors, registry."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from ncnnc.backends.numpy import INT8, Interpreter, Op, op_class, register_op, select_variant
from ncnnc.backends.numpy.registry import _OPS
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import NcnncError, UnsupportedError
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.registry import registry


def small_net() -> Graph:
    """conv -> relu -> split -> (pool, conv) -> concat -> innerproduct -> softmax."""
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("data", (3, 8, 8))
    c = b.layer("Convolution", [x], {0: 4, 1: 3, 4: 1, 5: 1, 6: 108},
                {"weight": rng.normal(size=108), "bias": rng.normal(size=4)}, name="conv")
    r = b.layer("ReLU", [c], {}, name="relu")
    s1, s2 = b.layer("Split", [r], {}, outputs=2, name="split")
    p = b.layer("Pooling", [s1], {0: 0, 1: 2, 2: 2}, name="pool")
    c2 = b.layer("Convolution", [s2], {0: 2, 1: 2, 3: 2, 6: 32}, {"weight": rng.normal(size=32)}, name="conv2")
    cat = b.layer("Concat", [p, c2], {}, name="cat")
    fc = b.layer("InnerProduct", [cat], {0: 5, 2: 6 * 16 * 5}, {"weight": rng.normal(size=480)}, name="fc")
    b.layer("Softmax", [fc], {}, name="prob")
    return b.build()


def test_batch_equals_one_by_one():
    interp = Interpreter(small_net())
    x = np.random.default_rng(1).normal(size=(5, 3, 8, 8)).astype(np.float32)
    batched = interp.run({"data": x})["prob"]
    assert batched.shape == (5, 5)
    for i in range(5):
        np.testing.assert_allclose(interp.run({"data": x[i:i + 1]})["prob"][0], batched[i], rtol=1e-5, atol=1e-7)


def test_observe_every_blob_and_keep_only_outputs():
    graph = small_net()
    seen: dict[str, tuple] = {}
    result = Interpreter(graph).run({"data": np.ones((2, 3, 8, 8), np.float32)}, graph.blobs,
                                    observe=lambda name, a: seen.setdefault(name, a.shape))
    assert list(seen) == graph.blobs  # each once, in production order
    assert seen["cat"] == (2, 6, 4, 4) and seen["fc"] == (2, 5)
    assert list(result) == ["prob"]
    kept = Interpreter(graph).run({"data": np.ones((1, 3, 8, 8), np.float32)}, ["conv", "fc"],
                                  observe=lambda n, a: None, keep=["conv"])
    assert list(kept) == ["conv"]


def test_intermediate_blobs_are_freed_early():
    graph = small_net()
    refs: dict[str, weakref.ref] = {}
    alive_at_fc: list[str] = []

    def observe(name: str, array: np.ndarray) -> None:
        refs[name] = weakref.ref(array)
        if name == "fc":
            gc.collect()
            alive_at_fc.extend(n for n, r in refs.items() if r() is not None and n not in ("data", "fc"))

    Interpreter(graph).run({"data": np.ones((2, 3, 8, 8), np.float32)}, graph.blobs, observe=observe)
    assert alive_at_fc == []  # conv, relu, pool, cat ... were dropped once their last reader ran
    # (the input stays alive: the caller holds it)


def test_only_needed_layers_run_and_any_blob_can_be_fed():
    graph = small_net()
    interp = Interpreter(graph)
    x = np.random.default_rng(2).normal(size=(1, 3, 8, 8)).astype(np.float32)
    full = interp.run({"data": x}, ["relu", "prob"])
    again = interp.run({"relu": full["relu"]}, ["prob"])
    np.testing.assert_array_equal(again["prob"], full["prob"])
    assert set(interp.run({"data": x}, ["pool"])) == {"pool"}


def test_user_errors():
    interp = Interpreter(small_net())
    x = np.ones((1, 3, 8, 8), np.float32)
    with pytest.raises(NcnncError, match="no blob named 'nope'"):
        interp.run({"data": x}, ["nope"])
    with pytest.raises(NcnncError, match="no blob named 'input'"):
        interp.run({"input": x})
    with pytest.raises(NcnncError, match="was not given"):
        interp.run({}, ["prob"])
    with pytest.raises(NcnncError, match="layer cat: Concat cannot run"):
        interp.run({"data": np.ones((1, 3, 9, 9), np.float32)})


def test_unknown_layer_type_is_reported_when_built():
    graph = small_net()
    graph.layers.insert(1, Layer("NoSuchLayer", "odd", ["data"], ["odd_out"]))
    with pytest.raises(UnsupportedError, match="layer odd"):
        Interpreter(graph)


def test_variant_selection_and_plugging_in_an_op():
    graph = small_net()
    conv = graph.layer("conv")
    assert select_variant(conv) == "fp32"
    conv.params["int8_scale_term"] = 2
    assert select_variant(conv) == INT8
    assert select_variant(graph.layer("relu")) == "fp32"

    previous = op_class("ReLU")

    @register_op("ReLU")
    class NegatedReLU(Op):
        def run(self, x: np.ndarray) -> np.ndarray:
            return -np.maximum(x, 0)

    try:
        graph = small_net()
        out = Interpreter(graph).run({"data": np.ones((1, 3, 8, 8), np.float32)}, ["relu"])["relu"]
        assert (out <= 0).all() and (out < 0).any()
    finally:
        _OPS[("ReLU", "fp32")] = previous


def test_registered_as_backend_plugin():
    backend = registry().get("backends", "numpy")
    assert backend.role == "interpreter" and backend.entry is Interpreter
