"""Layers that only move elements: Slice, Crop, Flatten, Reshape, Permute, ShuffleChannel.

Any dtype passes through unchanged (int8 blobs keep flowing as int8).  Wherever the result is a
view of the input's memory the layer costs nothing (:meth:`~ncnnc.backends.llvm.lower.Lowerer.alias`):

- Slice / Crop along channels or rows of a 3-D blob, rows of a 2-D blob, a 1-D blob (a sub-view,
  which keeps the input's ``pixel_stride``);
- Flatten / Reshape whose memory order is unchanged: the input and output both in ncnn's flat
  order (1-D/2-D blobs, 3-D blobs with one channel and no gaps, or one pixel), or both 3-D with the
  same channel count (then every element keeps its place: ``(c, h, w) -> (c, h', w')``);
- Permute ``0=0``, ShuffleChannel with one group (or one channel per group).

Everything else is one gather kernel: for each output element (pixels outer, channels inner, the
output's own ``pixel_stride``) the source element index is computed from the output coordinates at
compile-time-known strides (integer division by constants only for Reshape).  Copies are exact:
results are bit-identical (atol=0) to the numpy simulation.

Refused: Reshape with ``3=permute=1`` (the numpy reference ignores the flag, so there is no
contract to match), Crop by a reference blob's *values* (``0=-233``), Slice/Crop parts the shape
rule and the reference disagree on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from llvmlite import ir

from ncnnc.backends.llvm.irutil import DTYPES, for_range, i64, load, new_function, store
from ncnnc.backends.llvm.lower import Lowerer, Unsupported, in_place_axis, register_lowering, sub_view
from ncnnc.backends.llvm.program import KernelContext, Shape, View
from ncnnc.core.ir import Layer

IndexFn = Callable[[ir.IRBuilder, Sequence[ir.Value]], ir.Value]
"""Output coordinates (in the output's ncnn axes, ``(ch, y, x)`` / ``(y, x)`` / ``(x,)``) -> the
source element index (relative to the source view's offset)."""


def element_index(b: ir.IRBuilder, view: View, coords: Sequence[ir.Value]) -> ir.Value:
    """The element index of logical coordinates ``coords`` (one per axis of ``view``) in ``view``."""
    if view.dims == 3:
        ch, y, x = coords
        return b.add(b.mul(b.add(b.mul(y, i64(view.shape[2])), x), i64(view.pixel_stride)), ch)
    if view.dims == 2:
        y, x = coords
        return b.add(b.mul(y, i64(view.shape[1])), x)
    return coords[0]


def emit_gather(ctx: KernelContext, index: IndexFn) -> ir.Function:
    """``dst[coords] = src[index(coords)]`` for every output element (pixels outer, channels inner)."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    sp, dp = fn.args
    ty = DTYPES[src.dtype]
    c, h, w = dst.chw
    with for_range(b, 0, h, name="y") as y, for_range(b, 0, w, name="x") as x:
        pix = b.mul(b.add(b.mul(y, i64(w)), x), i64(dst.stride))
        with for_range(b, 0, c, name="c") as ch:
            coords = (ch, y, x) if dst.dims == 3 else (y, x) if dst.dims == 2 else (x,)
            store(b, load(b, sp, ty, index(b, coords)), dp, b.add(pix, ch))
    b.ret_void()
    return fn


def gather(lw: Lowerer, src: View, dst: View, index: IndexFn, kind: str = "gather") -> None:
    """Add a step writing ``dst`` from ``src`` through ``index``."""
    lw.add(kind, [src], [dst], lambda ctx: emit_gather(ctx, index))


def _offset_index(src: View, offsets: Sequence[int]) -> IndexFn:
    """Source coordinates = output coordinates + ``offsets`` (a crop / slice)."""

    def index(b: ir.IRBuilder, coords: Sequence[ir.Value]) -> ir.Value:
        return element_index(b, src, [b.add(v, i64(o)) if o else v for v, o in zip(coords, offsets)])

    return index


def _crop(lw: Lowerer, blob: str, src: View, offsets: Sequence[int], shape: Shape) -> None:
    """``blob`` = the box of ``shape`` at ``offsets`` of ``src``: a view when it can be one, else a copy."""
    shape = tuple(shape)
    if shape == src.shape:
        lw.alias(blob, src)
        return
    changed = [axis for axis in range(src.dims) if shape[axis] != src.shape[axis] or offsets[axis]]
    if len(changed) == 1 and in_place_axis(src.dims, changed[0]):
        lw.alias(blob, sub_view(src, changed[0], offsets[changed[0]], shape))
        return
    if src.dims == 3 and set(changed) == {0, 1}:  # channels and rows: still one view
        part = sub_view(src, 1, offsets[1], (src.shape[0], shape[1], src.shape[2]))
        lw.alias(blob, sub_view(part, 0, offsets[0], shape))
        return
    out = _output_blob(lw, blob, src.dtype)
    gather(lw, src, out, _offset_index(src, offsets), "crop")


def _output_blob(lw: Lowerer, blob: str, dtype: str) -> View:
    layer = lw.producer[blob]
    return lw.output(layer, layer.outputs.index(blob), dtype)


def _axis(axis: int, dims: int) -> int:
    return axis + dims if axis < 0 else axis


@register_lowering("Slice")
def lower_slice(lw: Lowerer, layer: Layer) -> None:
    """Parts along ``1=axis``: views along channels/rows, a copy along ``w`` of a 2-D/3-D blob."""
    src = lw.input(layer, 0)
    axis = _axis(layer.p("axis"), src.dims)
    if not 0 <= axis < src.dims:
        raise Unsupported(f"axis {layer.p('axis')} of a {src.dims}-D blob")
    start = 0
    for blob in layer.outputs:
        shape = lw.shape(blob)
        if start + shape[axis] > src.shape[axis] or shape[axis] < 0:
            raise Unsupported("parts larger than the input")
        offsets = [0] * src.dims
        offsets[axis] = start
        _crop(lw, blob, src, offsets, shape)
        start += shape[axis]


@register_lowering("Crop")
def lower_crop(lw: Lowerer, layer: Layer) -> None:
    """Crop by offsets/sizes, ``starts/ends/axes`` or a reference blob's shape (numpy's rules)."""
    from ncnnc.backends.numpy.shape_ops import Crop

    src = lw.input(layer, 0)
    ref = None
    if len(layer.inputs) > 1:
        if layer.p("woffset") == -233:
            raise Unsupported("by the values of a reference blob (0=-233)")
        ref = np.zeros((1, *lw.shape(layer.inputs[1])), np.float32)
    offsets, sizes = Crop(layer)._roi(src.shape, ref)
    shape = lw.shape(layer.outputs[0])
    if tuple(sizes) != tuple(shape) or any(o < 0 or o + s > n for o, s, n in zip(offsets, sizes, src.shape)):
        raise Unsupported(f"a crop of {tuple(sizes)} at {tuple(offsets)} from {src.shape} (shape rule: {shape})")
    _crop(lw, layer.outputs[0], src, offsets, shape)


def flat_order(view: View) -> bool:
    """True when the view's elements lie at ``offset + ncnn flat index`` (c, h, w order, no gaps)."""
    if view.dims < 3:
        return True
    c, h, w = view.shape
    return h * w == 1 or (c == 1 and view.pixel_stride == 1)


def _reshape(lw: Lowerer, layer: Layer, src: View, shape: Shape) -> None:
    """``src``'s elements in ncnn order laid out as ``shape``: a view when possible, else a gather."""
    shape = tuple(shape)
    blob = layer.outputs[0]
    if int(np.prod(shape)) != src.size:
        raise Unsupported(f"{src.shape} -> {shape}: the element counts differ")
    if shape == src.shape:
        lw.alias(blob, src)
        return
    if len(shape) == 3 and src.dims == 3 and shape[0] == src.shape[0]:
        lw.alias(blob, src.with_(shape=shape))
        return
    if flat_order(src):
        out = View(src.buffer, src.dtype, shape, src.offset, shape[0] if len(shape) == 3 else 0)
        if flat_order(out):
            lw.alias(blob, out)
            return
    out = lw.output(layer, 0, src.dtype)
    _, h_in, w_in = src.chw
    hw_in = h_in * w_in
    _, h_out, w_out = out.chw

    def index(b: ir.IRBuilder, coords: Sequence[ir.Value]) -> ir.Value:
        ch, y, x = coords if len(coords) == 3 else (i64(0), *coords) if len(coords) == 2 else (i64(0), i64(0),
                                                                                                coords[0])
        flat = b.add(b.mul(b.add(b.mul(ch, i64(h_out)), y), i64(w_out)), x)
        if flat_order(src):
            return flat
        return b.add(b.mul(b.urem(flat, i64(hw_in)), i64(src.pixel_stride)), b.udiv(flat, i64(hw_in)))

    gather(lw, src, out, index, "reshape")


@register_lowering("Flatten")
def lower_flatten(lw: Lowerer, layer: Layer) -> None:
    """The elements in ncnn's ``c, h, w`` order as a 1-D blob."""
    _reshape(lw, layer, lw.input(layer, 0), lw.shape(layer.outputs[0]))


@register_lowering("Reshape")
def lower_reshape(lw: Lowerer, layer: Layer) -> None:
    """``0=w 1=h 2=c`` (0 keeps the input's, -1 infers, -233 drops the axis), as the simulation."""
    if layer.p("permute"):
        raise Unsupported("3=permute=1 (the numpy reference ignores it)")
    _reshape(lw, layer, lw.input(layer, 0), lw.shape(layer.outputs[0]))


PERMUTES_3D = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
"""Permute ``order_type`` of a 3-D blob -> output axis i is input axis ``order[i]`` (numpy's order)."""


@register_lowering("Permute")
def lower_permute(lw: Lowerer, layer: Layer) -> None:
    """Reorder the axes of a 2-D (order 0/1) or 3-D (order 0-5) blob; a 1-D blob or order 0 is a view."""
    src = lw.input(layer, 0)
    order = layer.p("order_type")
    if order == 0 or src.dims == 1:
        lw.alias(layer.outputs[0], src)
        return
    if src.dims == 2:
        perm = (1, 0)
    elif 0 <= order < len(PERMUTES_3D):
        perm = PERMUTES_3D[order]
    else:
        raise Unsupported(f"order_type {order} on a {src.dims}-D blob")
    out = lw.output(layer, 0, src.dtype)
    if out.shape != tuple(src.shape[a] for a in perm):
        raise Unsupported(f"an output of shape {out.shape}")

    def index(b: ir.IRBuilder, coords: Sequence[ir.Value]) -> ir.Value:
        src_coords: list[ir.Value] = [i64(0)] * src.dims
        for i, a in enumerate(perm):
            src_coords[a] = coords[i]
        return element_index(b, src, src_coords)

    gather(lw, src, out, index, "permute")


@register_lowering("ShuffleChannel")
def lower_shuffle_channel(lw: Lowerer, layer: Layer) -> None:
    """``0=group`` (``1=reverse``: ``c / group`` groups): output channel ``a * group + g`` is input
    channel ``g * (c / group) + a``, along ncnn axis 0 of any blob (as the simulation)."""
    src = lw.input(layer, 0)
    c = src.shape[0]
    group = layer.p("group")
    if group <= 0 or c % group:
        raise Unsupported(f"{c} channels in {group} groups")
    if layer.p("reverse"):
        group = c // group
    per = c // group
    if group == 1 or per == 1:
        lw.alias(layer.outputs[0], src)
        return
    out = lw.output(layer, 0, src.dtype)

    def index(b: ir.IRBuilder, coords: Sequence[ir.Value]) -> ir.Value:
        o = coords[0]
        ch = b.add(b.mul(b.urem(o, i64(group)), i64(per)), b.udiv(o, i64(group)))
        return element_index(b, src, [ch, *coords[1:]])

    gather(lw, src, out, index, "shufflechannel")
