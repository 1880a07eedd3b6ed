"""The graph IR: layers with ncnn semantics, named blobs with one producer, graph inputs/outputs.

A :class:`Graph` is an ordered list of :class:`Layer` objects kept in topological order.  Blobs are
plain names; each is produced by exactly one layer (``Input`` layers produce the graph inputs).
Weights are :class:`Weight` objects: a numpy array plus the storage it has (or will have) in a
``.bin`` file.  Passes change graphs through the rewrite helpers at the bottom of
:class:`Graph` so that the invariants checked by :meth:`Graph.validate` keep holding.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ncnnc.core.errors import GraphError
from ncnnc.core.params import ParamDict, ParamValue, WeightSpec, get_schema

STORAGES = ("fp32", "fp16", "int8", "codebook", "raw")
"""Weight storages: tagged fp32 (zero tag), fp16, int8, 256-entry codebook, untagged raw fp32."""


@dataclass
class Weight:
    """One weight blob: values plus the storage it is written with.

    ``data`` holds float32 values for fp32/fp16/codebook/raw storages and int8 values for int8
    storage, in the logical shape of the layer's :class:`WeightSpec`.  ``codebook`` keeps the
    256-entry table and ``indices`` the per-element indices of a codebook blob, and ``tag`` its 4-byte tag,
    so that one reads and writes back byte for byte.
    """

    data: np.ndarray
    storage: str = "fp32"
    codebook: np.ndarray | None = None
    indices: np.ndarray | None = None
    tag: int = 0

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"unknown weight storage {self.storage!r}")

    @property
    def nbytes_stored(self) -> int:
        """Bytes this blob takes in a ``.bin`` file, tag and alignment padding included."""
        n = int(self.data.size)
        if self.storage == "raw":
            return 4 * n
        if self.storage == "fp32":
            return 4 + 4 * n
        if self.storage == "fp16":
            return 4 + _align4(2 * n)
        if self.storage == "int8":
            return 4 + _align4(n)
        return 4 + 256 * 4 + _align4(n)

    def as_float(self) -> np.ndarray:
        """The values as float32 (what ncnn's model loader produces for float storages)."""
        if self.storage == "fp16":
            return self.data.astype(np.float16).astype(np.float32)
        return self.data.astype(np.float32)


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


@dataclass
class Layer:
    """One ncnn layer: type, unique name, input and output blob names, params and weights."""

    type: str
    name: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    params: ParamDict = None  # type: ignore[assignment]
    weights: dict[str, Weight] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.params is None:
            self.params = ParamDict(self.type)
        elif isinstance(self.params, dict):
            self.params = ParamDict(self.type, self.params)

    def p(self, key: int | str) -> ParamValue:
        """The value of a param id or name, ncnn's default when not set."""
        return self.params[key]

    def weight_specs(self) -> list[WeightSpec]:
        """The weight blobs this layer loads from a ``.bin`` file, in order."""
        schema = get_schema(self.type)
        return schema.weight_specs(self.params) if schema else []

    def weight(self, name: str) -> np.ndarray:
        """A weight's values as float32 in its logical shape."""
        return self.weights[name].as_float()

    def clone(self) -> Layer:
        """A deep copy (weights included)."""
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"<{self.type} {self.name} {self.inputs}->{self.outputs}>"


class Graph:
    """A network: layers in topological order, each blob produced once.

    ``inputs`` are the blobs produced by ``Input`` layers, ``outputs`` the blobs no layer consumes
    (or the ones a frontend names explicitly).  ``shapes`` maps blob names to inferred shapes in
    numpy order without batch (``(c, h, w)``, ``(h, w)``, ``(w,)`` or ``(c, d, h, w)``) once
    :func:`ncnnc.core.shapes.infer_shapes` has run.
    """

    def __init__(self, layers: Iterable[Layer] = (), name: str = "") -> None:
        self.layers: list[Layer] = list(layers)
        self.name = name
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.explicit_outputs: list[str] | None = None

    # -- queries -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def layer(self, name: str) -> Layer:
        """The layer with this name (KeyError if none)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def find(self, name: str) -> Layer | None:
        """The layer with this name, or None."""
        return next((layer for layer in self.layers if layer.name == name), None)

    def producer(self, blob: str) -> Layer | None:
        """The layer that produces a blob."""
        for layer in self.layers:
            if blob in layer.outputs:
                return layer
        return None

    def consumers(self, blob: str) -> list[Layer]:
        """The layers that read a blob, in graph order."""
        return [layer for layer in self.layers if blob in layer.inputs]

    def producers(self) -> dict[str, Layer]:
        """``blob -> producing layer`` for every blob."""
        return {b: layer for layer in self.layers for b in layer.outputs}

    def consumer_map(self) -> dict[str, list[Layer]]:
        """``blob -> consuming layers`` for every blob (blobs nobody reads map to [])."""
        result: dict[str, list[Layer]] = {b: [] for layer in self.layers for b in layer.outputs}
        for layer in self.layers:
            for b in layer.inputs:
                result.setdefault(b, []).append(layer)
        return result

    @property
    def blobs(self) -> list[str]:
        """Every blob name, in production order."""
        return [b for layer in self.layers for b in layer.outputs]

    @property
    def inputs(self) -> list[str]:
        """Blobs produced by ``Input`` layers."""
        return [b for layer in self.layers if layer.type == "Input" for b in layer.outputs]

    @property
    def outputs(self) -> list[str]:
        """The graph outputs: explicit ones if set, else blobs that no layer consumes."""
        if self.explicit_outputs is not None:
            return list(self.explicit_outputs)
        consumed = {b for layer in self.layers for b in layer.inputs}
        return [b for b in self.blobs if b not in consumed]

    def copy(self) -> Graph:
        """A deep copy."""
        return copy.deepcopy(self)

    def missing_weights(self) -> list[tuple[Layer, str]]:
        """``(layer, weight name)`` for every weight a layer's params call for but it does not have
        (a model read from a ``.param`` alone has none)."""
        return [(layer, spec.name) for layer in self.layers for spec in layer.weight_specs()
                if spec.name not in layer.weights]

    # -- invariants ----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`GraphError` on a duplicate layer name, a blob with two producers,
        a blob read before it is produced (unknown blob or cycle) or an empty graph."""
        seen_layers: set[str] = set()
        produced: dict[str, str] = {}
        all_outputs = {b: layer.name for layer in self.layers for b in layer.outputs}
        for layer in self.layers:
            if layer.name in seen_layers:
                raise GraphError(f"duplicate layer name {layer.name!r}", where=f"layer {layer.name}")
            seen_layers.add(layer.name)
            for b in layer.inputs:
                if b not in produced:
                    if b in all_outputs:
                        raise GraphError(f"blob {b!r} is read before it is produced (cycle or order)",
                                         where=f"layer {layer.name}")
                    raise GraphError(f"blob {b!r} is never produced", where=f"layer {layer.name}")
            for b in layer.outputs:
                if b in produced:
                    raise GraphError(f"blob {b!r} already produced by layer {produced[b]!r}",
                                     where=f"layer {layer.name}")
                produced[b] = layer.name
        for b in self.explicit_outputs or []:
            if b not in produced:
                raise GraphError(f"graph output {b!r} is never produced")

    def unused_outputs(self) -> list[tuple[Layer, str]]:
        """Blobs produced but never read, other than graph outputs: ``(layer, blob)`` pairs.

        Only meaningful when ``explicit_outputs`` is set; otherwise every unread blob is an output.
        """
        if self.explicit_outputs is None:
            return []
        consumed = {b for layer in self.layers for b in layer.inputs} | set(self.explicit_outputs)
        return [(layer, b) for layer in self.layers for b in layer.outputs if b not in consumed]

    def toposort(self) -> None:
        """Reorder layers topologically, keeping the current order among independent layers."""
        producers = self.producers()
        order: list[Layer] = []
        state: dict[str, int] = {}

        def visit(layer: Layer) -> None:
            mark = state.get(layer.name, 0)
            if mark == 2:
                return
            if mark == 1:
                raise GraphError("the graph has a cycle", where=f"layer {layer.name}")
            state[layer.name] = 1
            for b in layer.inputs:
                if b in producers:
                    visit(producers[b])
            state[layer.name] = 2
            order.append(layer)

        for layer in self.layers:
            visit(layer)
        self.layers = order

    # -- rewrite helpers -----------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        """A layer or blob name not used yet, derived from ``base``."""
        used = {layer.name for layer in self.layers} | set(self.blobs)
        if base not in used:
            return base
        i = 1
        while f"{base}_{i}" in used:
            i += 1
        return f"{base}_{i}"

    def insert_after(self, anchor: Layer, layer: Layer) -> None:
        """Insert ``layer`` right after ``anchor`` in the layer order."""
        self.layers.insert(self.layers.index(anchor) + 1, layer)

    def insert_before(self, anchor: Layer, layer: Layer) -> None:
        """Insert ``layer`` right before ``anchor`` in the layer order."""
        self.layers.insert(self.layers.index(anchor), layer)

    def remove_layer(self, layer: Layer) -> None:
        """Remove a layer; its consumers must have been rewired first."""
        self.layers.remove(layer)

    def replace_layer(self, old: Layer, new: Layer) -> None:
        """Put ``new`` in ``old``'s place in the layer order."""
        self.layers[self.layers.index(old)] = new

    def rename_blob(self, old: str, new: str) -> None:
        """Rename a blob everywhere: producer, consumers and explicit outputs."""
        for layer in self.layers:
            layer.inputs = [new if b == old else b for b in layer.inputs]
            layer.outputs = [new if b == old else b for b in layer.outputs]
        if self.explicit_outputs is not None:
            self.explicit_outputs = [new if b == old else b for b in self.explicit_outputs]
        if old in self.shapes:
            self.shapes[new] = self.shapes.pop(old)

    def rewire(self, old: str, new: str) -> None:
        """Make every consumer of blob ``old`` read ``new`` instead (``old``'s producer stays)."""
        for layer in self.layers:
            layer.inputs = [new if b == old else b for b in layer.inputs]
        if self.explicit_outputs is not None:
            self.explicit_outputs = [new if b == old else b for b in self.explicit_outputs]

    def bypass(self, layer: Layer) -> None:
        """Remove a one-in one-out layer, connecting its input straight to its consumers.

        The surviving blob keeps the *output* name when the removed layer's output is a graph
        output (so outputs keep their names), else the input name.
        """
        (src,) = layer.inputs
        (dst,) = layer.outputs
        is_output = dst in self.outputs
        self.layers.remove(layer)
        if is_output and not self.consumers(src) and src not in self.inputs:
            self.rename_blob(src, dst)
        else:
            self.rewire(dst, src)


def insert_splits(graph: Graph) -> None:
    """Give every blob read more than once a ``Split`` layer with one output per reader, as ncnn expects."""
    counter = 0
    for producer in list(graph.layers):
        for blob in list(producer.outputs):
            readers = [(layer, i) for layer in graph.layers for i, b in enumerate(layer.inputs) if b == blob]
            if len(readers) < 2:
                continue
            outs = [f"{blob}_splitncnn_{k}" for k in range(len(readers))]
            split = Layer("Split", f"splitncnn_{counter}", [blob], outs)
            counter += 1
            graph.insert_after(producer, split)
            for (layer, i), out in zip(readers, outs):
                layer.inputs[i] = out


def with_splits(graph: Graph) -> Graph:
    """``graph`` itself when every blob is read by at most one layer (which may read it several times, as
    ``x + x``), else a copy with the ``Split`` layers ncnn expects (:func:`insert_splits`; the layers are
    shallow copies: weights are shared, not copied)."""
    reads = [b for layer in graph.layers for b in set(layer.inputs)]
    if len(reads) == len(set(reads)):
        return graph
    copied = copy.copy(graph)
    copied.layers = [copy.copy(layer) for layer in graph.layers]
    for layer in copied.layers:
        layer.inputs = list(layer.inputs)
    insert_splits(copied)
    return copied
