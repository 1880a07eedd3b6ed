"""Fixtures for the built-in pass tests: random-weight models, and a check that a pass keeps outputs.

``optimized(graph, only=[...])`` runs the named passes (graph validated after each one) on a copy
and asserts that every graph output agrees before and after, both in the real ncnn runtime and in
the numpy backend, to ``rtol`` relative to the output's largest magnitude (1e-5 for fp32).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy import Interpreter
from ncnnc.core.ir import Graph
from ncnnc.core.optimize import OptimizeReport, optimize
from ncnnc.core.passes import DEAD_PRODUCERS


def rand(seed: int, *shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Uniform float32 test data."""
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def random_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """A random array for every Input layer, in its declared shape."""
    inputs = [layer for layer in graph.layers if layer.type == "Input"]
    shapes = [tuple(d for d in (x.p("c"), x.p("d"), x.p("h"), x.p("w")) if d) for x in inputs]
    return {x.outputs[0]: rand(seed + i, *shape) for i, (x, shape) in enumerate(zip(inputs, shapes))}


def assert_close(before: dict[str, np.ndarray], after: dict[str, np.ndarray], rtol: float, what: str) -> None:
    """Every output: same shape, max abs difference <= rtol * max abs value."""
    for name, ref in before.items():
        got = after[name]
        assert got.shape == ref.shape, f"{what} {name}: shape {ref.shape} -> {got.shape}"
        scale = max(float(np.abs(ref).max()), 1e-6)
        diff = float(np.abs(got - ref).max())
        assert diff <= rtol * scale, f"{what} {name}: max diff {diff:.3g} vs scale {scale:.3g}"


def _numpy_outputs(graph: Graph, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    result = Interpreter(graph).run({k: v[None] for k, v in inputs.items()}, outputs)
    return {k: v[0] for k, v in result.items()}


def check_optimized(graph: Graph, only: Sequence[str] | None = None, rtol: float = 1e-5, numpy: bool = True,
                    **options) -> tuple[Graph, OptimizeReport]:
    """Optimize a copy of ``graph`` and check that its outputs did not change (ncnn and, unless the
    numpy backend lacks a layer type of the model (``numpy=False``), numpy)."""
    inputs = random_inputs(graph)
    producers = graph.producers()
    outputs = [b for b in graph.outputs if producers[b].type not in DEAD_PRODUCERS]  # unread copies/constants
    runtime_before = run_graph(graph, inputs, outputs)
    numpy_before = _numpy_outputs(graph, inputs, outputs) if numpy else {}
    after = graph.copy()
    report = optimize(after, only=only, validate=True, **options)
    assert after.outputs == outputs, "graph outputs changed"
    assert_close(runtime_before, run_graph(after, inputs, outputs), rtol, "ncnn runtime")
    if numpy:
        assert_close(numpy_before, _numpy_outputs(after, inputs, outputs), rtol, "numpy backend")
    return after, report


def layer_types(graph: Graph) -> Counter:
    """How many layers of each type."""
    return Counter(layer.type for layer in graph.layers)


@pytest.fixture
def optimized() -> Callable[..., tuple[Graph, OptimizeReport]]:
    """:func:`check_optimized`."""
    return check_optimized


@pytest.fixture
def types() -> Callable[[Graph], Counter]:
    """:func:`layer_types`."""
    return layer_types


@pytest.fixture
def random() -> Callable[..., np.ndarray]:
    """:func:`rand`."""
    return rand
