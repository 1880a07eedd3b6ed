"""Turning a folded ONNX graph into ncnn layers: the conversion context and the operator registry.

Every activation is NCHW with batch 1: ONNX shape ``(1, *dims)`` is the ncnn blob ``dims`` (numpy
order ``(c, h, w)``, ``(h, w)`` or ``(w,)``), and an ONNX axis ``a > 0`` is ncnn axis ``a - 1``.
Blobs keep the ONNX tensor names.  A mapper may leave a blob in a squeezed ncnn layout with the
same data order (global pooling gives ``(c,)`` for ONNX ``(1, c, 1, 1)``); mappers that care about
the rank ask for the blob with :meth:`Converter.blob_as`, which inserts a ``Reshape`` when needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ncnnc.core.errors import ModelFormatError, UnsupportedError
from ncnnc.core.ir import Graph, Layer, Weight, insert_splits
from ncnnc.frontends.onnx_fold import FoldedGraph, node_label

Mapper = Callable[["Converter", onnx.NodeProto], None]
MAPPERS: dict[str, Mapper] = {}


def mapper(*op_types: str) -> Callable[[Mapper], Mapper]:
    """Register a function that maps ONNX nodes of these operator types to ncnn layers."""
    def register(fn: Mapper) -> Mapper:
        for op in op_types:
            MAPPERS[op] = fn
        return fn
    return register


def reshape_params(shape: tuple[int, ...]) -> dict[int, Any]:
    """ncnn ``Reshape`` params (``0=w 1=h 11=d 2=c``) for an ncnn shape in numpy order."""
    keys = {1: (0,), 2: (1, 0), 3: (2, 1, 0), 4: (2, 11, 1, 0)}[len(shape)]
    return dict(zip(keys, shape))


class Converter:
    """State of one conversion: the layers emitted so far and the ncnn layout of every blob."""

    def __init__(self, folded: FoldedGraph, path: str) -> None:
        self.g = folded
        self.path = path
        self.opset = folded.opset
        self.layers: list[Layer] = []
        self.nshape: dict[str, tuple[int, ...]] = {}
        self.alias: dict[str, str] = {}
        self._layer_names: set[str] = set()
        self._blob_names: set[str] = set(folded.inputs) | {o for n in folded.nodes for o in n.output}
        self._const_blobs: dict[tuple[str, tuple[int, ...]], str] = {}
        self._views: dict[tuple[str, tuple[int, ...]], str] = {}
        self.node: onnx.NodeProto | None = None
        self.index = 0

    # -- errors -----------------------------------------------------------------------------
    @property
    def where(self) -> str | None:
        """The current node as errors name it."""
        return node_label(self.node, self.index) if self.node is not None else None

    def unsupported(self, message: str) -> UnsupportedError:
        """An error about the current node (raise it)."""
        return UnsupportedError(message, self.path, self.where)

    # -- reading the ONNX side ---------------------------------------------------------------
    def attrs(self, node: onnx.NodeProto) -> dict[str, Any]:
        """The node's attributes as Python values (bytes decoded to str)."""
        result = {}
        for a in node.attribute:
            value = helper.get_attribute_value(a)
            result[a.name] = value.decode() if isinstance(value, bytes) else value
        return result

    def const(self, name: str) -> np.ndarray | None:
        """A constant tensor's value (initializer or folded), None for activations and missing inputs."""
        return self.g.consts.get(name) if name else None

    def input_const(self, node: onnx.NodeProto, index: int) -> np.ndarray | None:
        """The value of optional input ``index`` (None when absent); an error when it is not constant."""
        if len(node.input) <= index or not node.input[index]:
            return None
        value = self.const(node.input[index])
        if value is None:
            raise self.unsupported(f"input {index} ({node.input[index]}) must be a constant")
        return value

    def shape(self, name: str) -> tuple[int, ...]:
        """The static ONNX shape of a tensor (an error when shape inference could not fix it)."""
        if name in self.g.consts:
            return tuple(self.g.consts[name].shape)
        shape = self.g.shapes.get(name)
        if shape is None or any(d is None for d in shape):
            raise self.unsupported(f"the shape of tensor {name!r} is not static after shape inference")
        return shape  # type: ignore[return-value]

    def logical(self, name: str) -> tuple[int, ...]:
        """The ncnn shape of an activation: its ONNX shape without the batch dim (which must be 1).

        A tensor of shape ``(1,)`` (only the batch axis) is the one-element blob ``(1,)``.
        """
        shape = self.shape(name)
        if not shape or shape[0] != 1:
            raise self.unsupported(f"tensor {name!r} has shape {list(shape)}: only NCHW tensors with batch 1 "
                                   "map onto ncnn blobs")
        if len(shape) > 5:
            raise self.unsupported(f"tensor {name!r} has rank {len(shape)}: ncnn blobs have at most 4 dims")
        return shape[1:] or (1,)  # a tensor with only the batch axis: one value per item

    def axis(self, axis: int, rank: int) -> int:
        """An ONNX axis of a rank-``rank`` tensor as an ncnn axis (an error for the batch axis)."""
        a = axis + rank if axis < 0 else axis
        if not 0 < a < rank:
            raise self.unsupported(f"axis {axis} of a rank-{rank} tensor is the batch axis or out of range")
        return a - 1

    # -- emitting ncnn layers ----------------------------------------------------------------
    @staticmethod
    def _fresh(base: str, used: set[str]) -> str:
        name, i = base, 0
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        return name

    def fresh_blob(self, base: str) -> str:
        """A blob name not used yet (ncnn keeps blob and layer names apart)."""
        return self._fresh(base, self._blob_names)

    def fresh_layer(self, base: str) -> str:
        """A layer name not used yet."""
        return self._fresh(base.replace(" ", "_") or "layer", self._layer_names)

    def add(self, ltype: str, inputs: list[str], outputs: list[str], params: dict[int, Any] | None = None,
            weights: dict[str, np.ndarray] | None = None, shapes: list[tuple[int, ...]] | None = None,
            name: str | None = None) -> Layer:
        """Emit one ncnn layer; ``shapes`` are its outputs' ncnn shapes (default: the ONNX logical ones)."""
        base = name or (self.node.name if self.node is not None and self.node.name else ltype.lower())
        layer = Layer(ltype, self.fresh_layer(base), list(inputs), list(outputs), dict(params or {}))
        for key, value in (weights or {}).items():
            layer.weights[key] = Weight(np.ascontiguousarray(value, dtype=np.float32))
        for i, out in enumerate(outputs):
            self._blob_names.add(out)
            self.nshape[out] = shapes[i] if shapes is not None else self.logical(out)
        self.layers.append(layer)
        return layer

    def blob(self, name: str) -> str:
        """The ncnn blob holding ONNX tensor ``name`` (constants become ``MemoryData`` layers)."""
        name = self.alias.get(name, name)
        value = self.const(name)
        if value is not None:
            shape = value.shape[1:] if value.ndim > 1 and value.shape[0] == 1 else value.shape
            return self.const_blob(name, value.reshape(shape))
        if name not in self.nshape:
            raise ModelFormatError(f"tensor {name!r} is never produced", self.path, self.where)
        return name

    def const_blob(self, name: str, value: np.ndarray) -> str:
        """A ``MemoryData`` blob holding ``value`` in ncnn shape ``value.shape`` (one per name and shape)."""
        value = np.asarray(value, dtype=np.float32)
        if value.ndim == 0:
            value = value.reshape(1)
        if value.ndim > 4:
            raise self.unsupported(f"constant {name!r} has rank {value.ndim}: ncnn blobs have at most 4 dims")
        key = (name, tuple(value.shape))
        if key not in self._const_blobs:
            blob = self.fresh_blob(name)
            self.add("MemoryData", [], [blob], reshape_params(tuple(value.shape)), {"data": value},
                     [tuple(value.shape)], name=name)
            self._const_blobs[key] = blob
        return self._const_blobs[key]

    def blob_as(self, name: str, shape: tuple[int, ...]) -> str:
        """The blob of ``name`` in ncnn shape ``shape`` (a ``Reshape`` is inserted when its layout differs)."""
        blob = self.blob(name)
        if self.nshape[blob] == tuple(shape):
            return blob
        if int(np.prod(self.nshape[blob])) != int(np.prod(shape)):
            raise self.unsupported(f"cannot view blob {blob!r} of shape {self.nshape[blob]} as {shape}")
        key = (blob, tuple(shape))
        if key not in self._views:
            out = self.fresh_blob(f"{blob}_reshaped")
            self.add("Reshape", [blob], [out], reshape_params(tuple(shape)), shapes=[tuple(shape)],
                     name=f"{blob}_reshape")
            self._views[key] = out
        return self._views[key]

    def logical_blob(self, name: str) -> str:
        """The blob of activation ``name`` in its logical (ONNX without batch) ncnn shape."""
        return self.blob_as(name, self.logical(name))

    def passthrough(self, node: onnx.NodeProto, src: str) -> None:
        """Make the node's output the same blob as ``src`` (a ``Noop`` copy when it is a graph output)."""
        out = node.output[0]
        if out in self.g.outputs:
            self.add("Noop", [src], [out], shapes=[self.nshape[src]])
        else:
            self.alias[out] = src

    # -- the whole graph ---------------------------------------------------------------------
    def convert(self) -> Graph:
        """Map every node and return the ncnn graph (inputs first, ``Split`` layers for shared blobs)."""
        for name in self.g.inputs:
            shape = self.logical(name)
            params = dict(zip((0, 1, 2) if len(shape) <= 3 else (0, 1, 11, 2), reversed(shape)))
            self.add("Input", [], [name], params, shapes=[shape], name=name)
        for index, node in enumerate(self.g.nodes):
            self.node, self.index = node, index
            fn = MAPPERS.get(node.op_type) if node.domain in ("", "ai.onnx", "ncnnc") else None
            if fn is None:
                domain = f"{node.domain}." if node.domain else ""
                raise self.unsupported(f"unsupported operator {domain}{node.op_type}")
            fn(self, node)
        self.node = None
        for out in self.g.outputs:
            if out in self.g.consts:
                value = self.g.consts[out]
                self.add("MemoryData", [], [out], reshape_params(self.logical(out)),
                         {"data": value.reshape(self.logical(out))}, name=out)
        graph = Graph(self.layers)
        graph.explicit_outputs = list(self.g.outputs)
        insert_splits(graph)
        graph.validate()
        return graph
