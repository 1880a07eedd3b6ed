"""Lowering: a quantized (or fp32) graph -> a :class:`~ncnnc.backends.llvm.program.Program`.

One lowering function per layer type and variant (``"fp32"``/``"int8"``, the numpy backend's
:func:`~ncnnc.backends.numpy.registry.select_variant`) turns a layer into steps.  It reads its inputs
with :meth:`Lowerer.input`, gets the views to write with :meth:`Lowerer.output` (which may lie inside
a concatenation's buffer: Concat is written in place by its producers), or defines its outputs as views
of its inputs with :meth:`Lowerer.alias` (Split, channel Slice, Reshape that keeps the memory order
cost nothing).  A lowering refuses a parameter combination by raising :class:`Unsupported`; the
lowerer collects every refusal and reports them all in one line.

Register a lowering (built-in or from a plugin) with::

    @register_lowering("ReLU")
    def lower_relu(lw: Lowerer, layer: Layer) -> None: ...
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ncnnc.backends.llvm.program import Buffer, Emitter, Program, Shape, Step, View
from ncnnc.backends.llvm.quantize_on_write import is_max_pool, plan_quantize_on_write
from ncnnc.backends.numpy.registry import FP32, INT8, select_variant
from ncnnc.core.backend import Target
from ncnnc.core.errors import UnsupportedError
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.shapes import infer_shapes

Lowering = Callable[["Lowerer", Layer], None]
_LOWERINGS: dict[tuple[str, str], Lowering] = {}

PASS_THROUGH_TYPES = ("Split", "Slice", "Concat", "Reshape", "Flatten", "Dropout", "Noop", "ShuffleChannel", "Crop")
"""Layer types whose output has their input's dtype."""


class Unsupported(Exception):
    """Raised by a lowering for a layer (or parameter combination) the backend cannot compile."""


def register_lowering(layer_type: str, variant: str = FP32) -> Callable[[Lowering], Lowering]:
    """Decorator: ``fn`` lowers ``layer_type`` in ``variant`` (a later registration replaces an earlier one)."""

    def decorate(fn: Lowering) -> Lowering:
        _LOWERINGS[(layer_type, variant)] = fn
        return fn

    return decorate


def lowering_for(layer: Layer) -> Lowering | None:
    """The registered lowering of a layer, or None."""
    from ncnnc.backends.llvm import kernels  # noqa: F401  (registers the built-ins)

    return _LOWERINGS.get((layer.type, select_variant(layer)))


def supported_types() -> list[tuple[str, str]]:
    """Every ``(layer type, variant)`` with a lowering."""
    from ncnnc.backends.llvm import kernels  # noqa: F401

    return sorted(_LOWERINGS)


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)[:48]


class Lowerer:
    """Builds a :class:`Program` from a graph, layer by layer."""

    def __init__(self, graph: Graph, target: Target, input_shapes: dict[str, Shape] | None = None) -> None:
        self.graph = graph
        self.target = target
        self.shapes = infer_shapes(graph, input_shapes)
        self.producer: dict[str, Layer] = graph.producers()
        self.program = Program(graph.name or "model")
        self.views: dict[str, View] = {}
        self.placement: dict[str, tuple[str, int]] = {}
        self.write_scales: dict[str, float] = plan_quantize_on_write(graph)
        """Float outputs written as int8 with this scale (see :mod:`.quantize_on_write`)."""
        self.layer: Layer | None = None

    # ---- buffers and views -------------------------------------------------------------------

    def new_buffer(self, nbytes: int, kind: str = "workspace", index: int = 0) -> int:
        """A new buffer; returns its id."""
        buf = Buffer(len(self.program.buffers), max(int(nbytes), 1), kind, index)
        self.program.buffers.append(buf)
        return buf.id

    def temp(self, dtype: str, shape: Shape, pixel_stride: int = 0) -> View:
        """A fresh workspace view (dense unless ``pixel_stride`` is larger than the channel count)."""
        if len(shape) == 3 and pixel_stride < shape[0]:
            pixel_stride = shape[0]
        view = View(-1, dtype, tuple(shape), 0, pixel_stride if len(shape) == 3 else 0)
        return view.with_(buffer=self.new_buffer(view.nbytes_span))

    def shape(self, blob: str) -> Shape:
        """A blob's inferred shape (numpy order, no batch)."""
        return self.shapes[blob]

    def predicted_dtype(self, blob: str) -> str:
        """The dtype a blob will have, before its producer is lowered: ``i8`` for the output of a
        requantizing int8 convolution, of a quantize-on-write producer or a Quantize layer (and of
        Split/Slice/Concat/Reshape/Flatten/max Pooling of such blobs), ``f32`` otherwise."""
        layer = self.producer.get(blob)
        if layer is None or layer.type == "Input":
            return "f32"
        if blob in self.write_scales:
            return "i8"
        if layer.type in ("Convolution", "ConvolutionDepthWise") and select_variant(layer) == INT8:
            return "i8" if layer.p("int8_scale_term") > 100 else "f32"
        if is_max_pool(layer):
            return self.predicted_dtype(layer.inputs[0])
        if layer.type == "Quantize":
            return "i8"
        if layer.type in PASS_THROUGH_TYPES and layer.inputs:
            return self.predicted_dtype(layer.inputs[0])
        return "f32"

    def input(self, layer: Layer, i: int = 0, dtype: str | None = None, channel_major_ok: bool = False) -> View:
        """The view of the layer's ``i``-th input; with ``dtype="f32"`` an int8 blob is converted first.

        A model input stays in its caller's channel-major buffer until a reader that is not ``channel_major_ok``
        needs it: then it is converted to channels-last once, and every later reader gets that copy.
        """
        blob = layer.inputs[i]
        view = self.views[blob]
        if view.channel_major and not channel_major_ok:
            from ncnnc.backends.llvm.kernels.convert import emit_from_chw

            out = self._placed_view(blob, "f32")
            self.add("from_chw", [view], [out], emit_from_chw, layer_name=blob)
            self.views[blob] = view = out
        if dtype is not None and view.dtype != dtype:
            if dtype != "f32" or view.dtype != "i8":
                raise Unsupported(f"input {layer.inputs[i]} is {view.dtype}, the layer needs {dtype}")
            from ncnnc.backends.llvm.kernels.convert import emit_convert

            out = self.temp("f32", view.shape)
            self.add("convert", [view], [out], emit_convert, layer_name=f"{layer.name}.in{i}")
            view = out
        return view

    def output(self, layer: Layer, i: int = 0, dtype: str = "f32") -> View:
        """The view the layer writes its ``i``-th output to (inside a concatenation when planned so)."""
        blob = layer.outputs[i]
        existing = self.views.get(blob)  # made already when an input of an in-place Concat asked for it
        view = existing if existing is not None and existing.dtype == dtype else self._placed_view(blob, dtype)
        self.views[blob] = view
        return view

    def _placed_view(self, blob: str, dtype: str) -> View:
        shape = self.shapes[blob]
        if blob in self.placement:
            parent, start = self.placement[blob]
            pv = self.views.get(parent) or self._placed_view(parent, dtype)
            self.views[parent] = pv
            if pv.dtype == dtype:
                return sub_view(pv, self.concat_axis(parent), start, shape)
            del self.placement[blob]
        return self.temp(dtype, shape)

    def concat_axis(self, blob: str) -> int:
        """The (non-negative) ncnn axis of the Concat that produces ``blob``."""
        layer = self.producer[blob]
        dims = len(self.shapes[blob])
        axis = layer.p("axis")
        return axis + dims if axis < 0 else axis

    def alias(self, blob: str, view: View) -> None:
        """Define ``blob`` as a view of existing memory (no copy), unless it must be written in place
        elsewhere: then a copy step is emitted."""
        if blob in self.placement:
            target = self._placed_view(blob, view.dtype)
            from ncnnc.backends.llvm.kernels.convert import emit_copy

            self.add("copy", [view], [target], emit_copy)
            view = target
        self.views[blob] = view

    def place_in(self, blob: str, parent: str, start: int) -> None:
        """Plan ``blob`` to live inside ``parent``'s memory from index ``start`` along the axis of the
        Concat that makes ``parent`` (in-place Concat)."""
        self.placement[blob] = (parent, start)

    # ---- steps ------------------------------------------------------------------------------

    def add(self, kind: str, inputs: list[View], outputs: list[View], emit: Emitter,
            layer_name: str | None = None, macs: int = 0, parallel: bool = False) -> Step:
        """Append a kernel call (``parallel``: the kernel splits its work with ``KernelContext.split``)."""
        name = layer_name or (self.layer.name if self.layer else kind)
        step = Step(f"k{len(self.program.steps)}_{kind}_{_ident(name)}", kind, list(inputs), list(outputs), emit,
                    name, macs, parallel)
        self.program.steps.append(step)
        return step

    # ---- the whole graph --------------------------------------------------------------------

    def lower(self) -> Program:
        """Lower every layer; one :class:`~ncnnc.core.errors.UnsupportedError` lists all refusals."""
        from ncnnc.backends.llvm.kernels.convert import emit_from_chw, emit_to_chw
        from ncnnc.backends.llvm.kernels.shape import plan_concats

        plan_concats(self)
        refused: list[str] = []
        for layer in self.graph.layers:
            self.layer = layer
            if layer.type == "Input":
                shape = self.shapes[layer.outputs[0]]
                if len(shape) > 3:
                    refused.append(f"{layer.name} (Input: 4-D blob)")
                    continue
                index = len(self.program.inputs)
                self.program.inputs.append((layer.outputs[0], shape))
                ext = View(self.new_buffer(4 * _size(shape), "input", index), "f32", shape, 0,
                           shape[0] if len(shape) == 3 else 0)
                if layer.outputs[0] in self.placement:  # written into its Concat right away
                    self.add("from_chw", [ext], [self.output(layer, 0, "f32")], emit_from_chw)
                else:  # read in place; converted when a reader needs channels-last (see input())
                    channel_major = len(shape) == 3 and shape[0] > 1 and shape[1] * shape[2] > 1
                    self.views[layer.outputs[0]] = ext.with_(channel_major=channel_major)
                continue
            lowering = lowering_for(layer)
            try:
                if lowering is None:
                    raise Unsupported(f"{layer.type}" + (" int8" if select_variant(layer) == INT8 else ""))
                if any(len(self.shapes[b]) > 3 for b in [*layer.inputs, *layer.outputs]):
                    raise Unsupported(f"{layer.type} on a 4-D blob")
                lowering(self, layer)
            except Unsupported as e:
                text = str(e)
                refused.append(f"{layer.name} ({text if text.startswith(layer.type) else layer.type + ': ' + text})")
                for blob in layer.outputs:
                    self.views.setdefault(blob, self.temp("f32", self.shapes[blob]))
        if refused:
            raise UnsupportedError(f"the llvm backend cannot compile {len(refused)} layer(s): " + ", ".join(refused))
        self.layer = None
        for index, blob in enumerate(self.graph.outputs):
            shape = self.shapes[blob]
            self.program.outputs.append((blob, shape))
            ext = View(self.new_buffer(4 * _size(shape), "output", index), "f32", shape, 0,
                       shape[0] if len(shape) == 3 else 0)
            self.add("to_chw", [self.views[blob]], [ext], emit_to_chw, layer_name=blob)
        from ncnnc.backends.llvm.memplan import plan_memory

        plan_memory(self.program)
        return self.program


def in_place_axis(dims: int, axis: int) -> bool:
    """True when parts along ``axis`` are views of the whole: channels or rows of a 3-D blob, rows of a
    2-D blob, a 1-D blob."""
    return (dims == 3 and axis in (0, 1)) or (dims == 2 and axis == 0) or dims == 1


def sub_view(whole: View, axis: int, start: int, shape: Shape) -> View:
    """The part of ``whole`` that starts at index ``start`` along ``axis`` and has ``shape``."""
    if whole.dims == 3 and axis == 0:
        return whole.with_(shape=shape, offset=whole.offset + start)
    if whole.dims == 3:
        return whole.with_(shape=shape, offset=whole.offset + start * whole.shape[2] * whole.pixel_stride)
    if whole.dims == 2:
        return whole.with_(shape=shape, offset=whole.offset + start * whole.shape[1])
    return whole.with_(shape=shape, offset=whole.offset + start)


def _size(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def lower(graph: Graph, target: Target, input_shapes: dict[str, Shape] | None = None) -> Program:
    """Lower a graph for a target to a planned :class:`Program` (see :class:`Lowerer`)."""
    return Lowerer(graph, target, input_shapes).lower()


__all__ = ["Lowerer", "Unsupported", "lower", "lowering_for", "register_lowering",
           "supported_types"]
