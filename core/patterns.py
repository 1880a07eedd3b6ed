"""Declarative fusion patterns: name the layers, say how they connect, write the rewrite.

A :class:`Pattern` is a small DAG of :class:`Op` nodes.  Each node names the layer type(s) it
matches, an optional predicate on the layer, and which other node produces each of its inputs.
The last node is the anchor: matching starts there and walks up the inputs, so every other node
must feed it.  Unless a node is marked ``shared``, its outputs must be read only by the matched
layers and must not be graph outputs: the rewrite may then drop them.

>>> relu_after_conv = chain(conv=Op("Convolution", where=lambda l: l.p("activation_type") == 0),
...                         act=Op("ReLU"))

:class:`PatternPass` is a :class:`~ncnnc.core.passes.Pass` that finds matches in graph order and
calls ``rewrite(graph, match)`` on each; ``match`` maps node names to layers.  The rewrite returns
a line describing the change, or ``None`` to leave this match alone.  :func:`fuse_into` and
:func:`eliminate` are the two rewrites most fusions need.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.passes import LEVEL_EXACT, ORDER_USER, Pass

LayerPredicate = Callable[[Layer], bool]
MatchPredicate = Callable[[Graph, "Match"], bool]
Rewrite = Callable[[Graph, "Match"], "str | None"]


class Match(dict):
    """Node name -> matched :class:`~ncnnc.core.ir.Layer`, in the pattern's node order."""

    def key(self) -> tuple[str, ...]:
        """The matched layer names (identifies a match across graph edits)."""
        return tuple(layer.name for layer in self.values())


@dataclass(frozen=True)
class Op:
    """One pattern node.

    ``types``: a layer type or a tuple of them.  ``inputs``: for each input slot, the name of the
    node producing it, or ``None`` for any blob; empty means the inputs are not constrained.
    ``n_inputs``: the exact input count (default ``len(inputs)`` when inputs are given).
    ``where``: a predicate on the layer.  ``shared``: this node's outputs may also be read outside
    the pattern (it is kept, e.g. a ``MemoryData`` constant).  ``commutative``: a two-input node
    also matches with its inputs swapped.
    """

    types: str | tuple[str, ...]
    inputs: tuple[str | None, ...] = ()
    where: LayerPredicate | None = None
    n_inputs: int | None = None
    shared: bool = False
    commutative: bool = False

    @property
    def type_set(self) -> tuple[str, ...]:
        """The accepted layer types as a tuple."""
        return (self.types,) if isinstance(self.types, str) else tuple(self.types)

    def accepts(self, layer: Layer) -> bool:
        """Whether a layer passes this node's own checks (type, input count, predicate)."""
        if layer.type not in self.type_set:
            return False
        count = self.n_inputs if self.n_inputs is not None else (len(self.inputs) or None)
        if count is not None and len(layer.inputs) != count:
            return False
        return self.where is None or bool(self.where(layer))


class Pattern:
    """A DAG of named :class:`Op` nodes; the last one is the anchor that every other node feeds."""

    def __init__(self, **nodes: Op) -> None:
        if not nodes:
            raise ValueError("a pattern needs at least one node")
        self.nodes = dict(nodes)
        self.anchor = list(self.nodes)[-1]
        for name, op in self.nodes.items():
            for ref in op.inputs:
                if ref is not None and ref not in self.nodes:
                    raise ValueError(f"node {name!r} reads from unknown node {ref!r}")
        reached = self._ancestors(self.anchor)
        missing = [n for n in self.nodes if n not in reached]
        if missing:
            raise ValueError(f"node(s) {missing} do not feed the anchor {self.anchor!r}")

    def _ancestors(self, name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += [r for r in self.nodes[n].inputs if r is not None]
        return seen

    def match(self, graph: Graph, layer: Layer, producers: dict[str, Layer],
              consumers: dict[str, list[Layer]]) -> Match | None:
        """The match anchored at ``layer``, or None.  ``producers``/``consumers`` are the graph's maps."""
        binding = self._bind(self.anchor, layer, {}, producers)
        if binding is None:
            return None
        matched = {id(m) for m in binding.values()}
        outputs = set(graph.outputs)
        for name, bound in binding.items():
            if name == self.anchor or self.nodes[name].shared:
                continue
            for blob in bound.outputs:
                if blob in outputs or any(id(c) not in matched for c in consumers.get(blob, [])):
                    return None
        return Match((n, binding[n]) for n in self.nodes)

    def _bind(self, name: str, layer: Layer, binding: dict[str, Layer],
              producers: dict[str, Layer]) -> dict[str, Layer] | None:
        if name in binding:
            return binding if binding[name] is layer else None
        if any(b is layer for b in binding.values()):
            return None
        op = self.nodes[name]
        if not op.accepts(layer):
            return None
        orders = [list(op.inputs)]
        if op.commutative and len(op.inputs) == 2:
            orders.append(list(reversed(op.inputs)))
        for refs in orders:
            trial: dict[str, Layer] | None = {**binding, name: layer}
            for blob, ref in zip(layer.inputs, refs):
                if ref is None:
                    continue
                producer = producers.get(blob)
                trial = None if producer is None else self._bind(ref, producer, trial, producers)
                if trial is None:
                    break
            if trial is not None:
                return trial
        return None


def chain(**nodes: Op) -> Pattern:
    """A linear pattern: each node reads the previous node's output as its only input."""
    linked, prev = {}, None
    for name, op in nodes.items():
        if prev is not None and not op.inputs:
            op = Op(op.types, (prev,), op.where, op.n_inputs, op.shared, op.commutative)
        linked[name] = op
        prev = name
    return Pattern(**linked)


class PatternPass(Pass):
    """A pass made of one or more patterns and a rewrite called on each match.

    Patterns are tried in the given order at every layer (in graph order); ``where`` is an extra
    predicate on the whole match (cross-layer conditions such as "the constant has one value per
    output channel").  Matches the rewrite declines (returns None) are not offered again.
    """

    def __init__(self, name: str, pattern: Pattern | Sequence[Pattern], rewrite: Rewrite,
                 description: str = "", where: MatchPredicate | None = None, level: int = LEVEL_EXACT,
                 order: int = ORDER_USER, needs_shapes: bool = False) -> None:
        super().__init__(name, description or (rewrite.__doc__ or "").strip().split("\n")[0], level, order,
                         needs_shapes)
        self.patterns = [pattern] if isinstance(pattern, Pattern) else list(pattern)
        self.rewrite = rewrite
        self.where = where

    def find(self, graph: Graph, skip: Collection[tuple[str, ...]] = ()) -> Match | None:
        """The first match in graph order not listed in ``skip``, or None."""
        producers = graph.producers()
        consumers = graph.consumer_map()
        for layer in graph.layers:
            for pattern in self.patterns:
                if layer.type not in pattern.nodes[pattern.anchor].type_set:
                    continue
                m = pattern.match(graph, layer, producers, consumers)
                if m is not None and m.key() not in skip and (self.where is None or self.where(graph, m)):
                    return m
        return None

    def run(self, graph: Graph) -> list[str]:
        """Rewrite every match until none is left."""
        changes: list[str] = []
        declined: set[tuple[str, ...]] = set()
        while (m := self.find(graph, declined)) is not None:
            result = self.rewrite(graph, m)
            if result is None:
                declined.add(m.key())
            else:
                changes.append(result)
        return changes


def pattern_pass(name: str, pattern: Pattern | Sequence[Pattern], description: str = "",
                 where: MatchPredicate | None = None, level: int = LEVEL_EXACT, order: int = ORDER_USER,
                 needs_shapes: bool = False) -> Callable[[Rewrite], PatternPass]:
    """Decorator: turn a rewrite function into a :class:`PatternPass`."""
    def wrap(rewrite: Rewrite) -> PatternPass:
        return PatternPass(name, pattern, rewrite, description, where, level, order, needs_shapes)
    return wrap


# -- rewrite helpers ------------------------------------------------------------------------------
def fuse_into(graph: Graph, keep: Layer, *absorbed: Layer) -> None:
    """Merge a chain into its first layer: ``keep`` takes the last absorbed layer's output blob(s)
    (its name survives, as in ncnnoptimize) and the absorbed layers are removed."""
    keep.outputs = list(absorbed[-1].outputs)
    for layer in absorbed:
        graph.remove_layer(layer)


def _elimination(graph: Graph, layer: Layer, dst: str) -> str | None:
    src = layer.inputs[0]
    producer = graph.producer(src)
    others = [c for c in graph.consumers(src) if c is not layer]
    if producer is not None and producer.type != "Input" and not others and src not in graph.outputs:
        return "rename"
    if dst not in graph.outputs:
        return "rewire"
    return None


def can_eliminate(graph: Graph, layer: Layer, dst: str | None = None) -> bool:
    """Whether :func:`eliminate` can drop ``layer`` without renaming a graph input or output."""
    return _elimination(graph, layer, dst or layer.outputs[0]) is not None


def eliminate(graph: Graph, layer: Layer, dst: str | None = None) -> None:
    """Drop a layer that passes its first input through to output blob ``dst`` (default its first).

    Like ncnnoptimize, the producer of the input then writes ``dst`` directly; when that would
    rename a graph input or a blob others read, the readers of ``dst`` read the input instead.
    The layer's other outputs must be unread.  Check :func:`can_eliminate` first.
    """
    dst = dst or layer.outputs[0]
    mode = _elimination(graph, layer, dst)
    if mode is None:
        raise ValueError(f"cannot eliminate layer {layer.name}: it links a graph input to a graph output")
    src = layer.inputs[0]
    graph.remove_layer(layer)
    if mode == "rename":
        graph.rename_blob(src, dst)
    else:
        graph.rewire(dst, src)


def set_weight(layer: Layer, name: str, values: np.ndarray) -> None:
    """Replace a float weight's values, keeping its storage (codebook weights become fp32)."""
    old = layer.weights.get(name)
    storage = old.storage if old is not None and old.storage in ("fp32", "fp16", "raw") else "fp32"
    shape = old.data.shape if old is not None and old.data.size == values.size else values.shape
    layer.weights[name] = Weight(np.asarray(values, np.float32).reshape(shape), storage)
