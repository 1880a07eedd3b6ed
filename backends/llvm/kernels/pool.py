"""ncnn Pooling: max and average; global, adaptive, and windowed with ncnn's pad modes (0 full,
1 valid, 2 SAME_UPPER, 3 SAME_LOWER), explicit pads, ``6=avgpool_count_include_pad``, strides and
non-square kernels, on 1-D, 2-D (one-channel images) and 3-D blobs.

Every kernel walks output pixels and vectorises over channels (contiguous within a pixel): blocks of
the target's float lanes, the remaining channels as one narrower vector.  Input and output views may
have any ``pixel_stride`` (parts of an in-place Concat); a global pooling's ``(c,)`` output is the
memory of a ``(c, 1, 1)`` image.  int8 inputs are converted to float first.

Semantics follow ``backends/numpy/pool_ops.py`` exactly:

- windowed pooling visits the ``kh * kw`` taps of the padded image in row-major order without
  materialising the padding: a tap in the padding reads a clamped in-bounds address and is replaced
  by the padding value (``0`` for the average, ``-FLT_MAX`` for the maximum), so the average's float32
  sum is the simulation's, addition for addition (padding zeros included), and bit-identical;
- without ``avgpool_count_include_pad`` the divisor counts the taps inside ncnn's region
  ``[pad_top, hb - pad_bottom - tail) x [pad_left, wb - pad_right - tail)`` (Python slice semantics,
  as the simulation's mask), and data outside that region is added as ``x * 0``, as the mask does;
- maxima are ``np.maximum`` (a NaN anywhere in the window gives NaN).

- global average pooling is numpy's ``mean`` over a contiguous plane: ``(0 + pairwise_sum(plane)) / n``
  with numpy's pairwise summation reproduced addition for addition (:func:`pairwise_sum`), so it is
  bit-identical too (as long as the simulation's plane is contiguous, which it is).

Tolerance: adaptive average pooling sums a region's pixels row by row, while numpy reduces the
strided region in its own iterator order (pairwise within rows of 8 or more).  Those results differ
by a few float32 ulp of the sum (measured: at most ``6e-8`` absolute on means of values in [-1, 1],
regions up to 28x19 pixels); the tests allow ``atol=1e-6``.  Sums of integers (int8 inputs) are
exact in any order.  Everything else is bit-identical.

Refused: pooling types other than 0/1, negative explicit pads, adaptive output sizes <= 0, a window
taller than one row on a 1-D blob, a window larger than the padded input, and any geometry whose
output shape disagrees with shape inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from ncnnc.backends.llvm.irutil import F32, I8, entry_alloca, for_range, i64, load, new_function, splat, store, vec
from ncnnc.backends.llvm.kernels.arith import fconst
from ncnnc.backends.llvm.kernels.elementwise import FLT_MAX, np_maximum
from ncnnc.backends.llvm.lower import Lowerer, Unsupported, register_lowering
from ncnnc.backends.llvm.program import KernelContext
from ncnnc.backends.numpy.pool_ops import pooling_pads
from ncnnc.core.ir import Layer

Block = Callable[[ir.Value, int], None]


def channel_blocks(b: ir.IRBuilder, c: int, lanes: int, body: Block) -> None:
    """``body(first channel, width)`` over ``c`` channels: a loop of ``lanes``-wide blocks, then the rest
    as one narrower block."""
    full, tail = divmod(c, lanes)
    if full:
        with for_range(b, 0, full, name="blk") as blk:
            body(b.mul(blk, i64(lanes)), lanes)
    if tail:
        body(i64(full * lanes), tail)


def _imin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _imax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _in_range(b: ir.IRBuilder, v: ir.Value, lo: int, hi: int) -> ir.Value:
    return b.and_(b.icmp_signed(">=", v, i64(lo)), b.icmp_signed("<", v, i64(hi)))


def _overlap(b: ir.IRBuilder, start: ir.Value, k: int, lo: int, hi: int) -> ir.Value:
    """``|[start, start + k) & [lo, hi)|`` (an i64 >= 0)."""
    n = b.sub(_imin(b, b.add(start, i64(k)), i64(hi)), _imax(b, start, i64(lo)))
    return _imax(b, n, i64(0))


def _acc_slot(b: ir.IRBuilder, width: int, slots: dict, elem: ir.Type = F32) -> ir.Value:
    if (width, str(elem)) not in slots:
        slots[(width, str(elem))] = entry_alloca(b, vec(elem, width), f"acc{width}")
    return slots[(width, str(elem))]


# ---- geometry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A windowed pooling in padded coordinates: padded row ``r`` is input row ``r - pad_top``."""

    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_left: int
    rows: tuple[int, int]
    """Padded rows holding data, ``[r0, r1)``."""
    cols: tuple[int, int]
    mask_rows: tuple[int, int]
    """Padded rows the average counts without ``avgpool_count_include_pad`` (``[m0, m1)``, maybe empty)."""
    mask_cols: tuple[int, int]
    oh: int
    ow: int


def _slice_range(size: int, start: int, stop: int) -> tuple[int, int]:
    r = range(size)[start:stop]
    return (r.start, r.stop) if len(r) else (0, 0)


def window_geometry(layer: Layer, h: int, w: int, flat: bool) -> Window:
    """The numpy op's padding arithmetic (``Pooling._windowed``) for an ``h x w`` input."""
    p = layer.params
    kw, kh, sw, sh = p["kernel_w"], p["kernel_h"], p["stride_w"], p["stride_h"]
    if min(kw, kh, sw, sh) <= 0:
        raise Unsupported("a zero kernel or stride")
    if flat and kh > 1:
        raise Unsupported(f"a window {kh} rows high on a 1-D blob")
    left, right, top, bottom = p["pad_left"], p["pad_right"], p["pad_top"], p["pad_bottom"]
    if min(left, right, top, bottom) < 0:
        raise Unsupported("negative explicit pads")
    found = pooling_pads(p, h, w, flat)
    if found is None:
        raise Unsupported(f"pad_mode {p['pad_mode']}")
    pads, (htail, wtail) = found
    pt, pb, pl, pr = pads
    hb, wb = h + pt + pb, w + pl + pr
    rows, cols = (max(pt, 0), hb - max(pb, 0)), (max(pl, 0), wb - max(pr, 0))
    if rows[1] <= rows[0] or cols[1] <= cols[0]:
        raise Unsupported("padding that crops the whole input")
    oh, ow = (hb - kh) // sh + 1, (wb - kw) // sw + 1
    if oh <= 0 or ow <= 0:
        raise Unsupported("a window larger than the padded input")
    return Window(kh, kw, sh, sw, pt, pl, rows, cols, _slice_range(hb, top, hb - bottom - htail),
                  _slice_range(wb, left, wb - right - wtail), oh, ow)


# ---- kernels ----------------------------------------------------------------------------------


def _emit_windowed(ctx: KernelContext, g: Window, is_max: bool, include_pad: bool) -> ir.Function:
    fn, b = ctx.function()
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    xp, yp = fn.args[:2]
    c, _h, w = src.chw
    int8 = src.dtype == "i8"
    elem = I8 if int8 else F32
    lanes = ctx.lanes(8 if int8 else 32)
    slots: dict = {}
    (r0, r1), (c0, c1), (m0, m1), (n0, n1) = g.rows, g.cols, g.mask_rows, g.mask_cols
    masked = not is_max and not include_pad
    # data outside the counted region is added as x * 0 (only matters for inf/NaN, but costs nothing here)
    zero_data = masked and not (m0 <= r0 and m1 >= r1 and n0 <= c0 and n1 >= c1)

    first, last = ctx.split(b, fn, g.oh)  # this thread's output rows
    with for_range(b, first, last, name="oy") as oy, for_range(b, 0, g.ow, name="ox") as ox:
        ry, rx = b.mul(oy, i64(g.sh)), b.mul(ox, i64(g.sw))
        out_pix = b.mul(b.add(b.mul(oy, i64(g.ow)), ox), i64(dst.stride))
        divisor = None
        if masked:
            area = b.mul(_overlap(b, ry, g.kh, m0, m1), _overlap(b, rx, g.kw, n0, n1))
            divisor = b.sitofp(area, F32)

        def block(ch: ir.Value, width: int) -> None:
            ty = vec(elem, width)
            slot = _acc_slot(b, width, slots, elem)
            if int8:  # max of quantized values: a padded tap is float2int8(-FLT_MAX) = -127
                b.store(ir.Constant(ty, [-127] * width), slot)
                pad_value = ir.Constant(ty, [-127] * width)
            else:
                b.store(ir.Constant(ty, [float("-inf") if is_max else 0.0] * width), slot)
                pad_value = ir.Constant(ty, [-FLT_MAX if is_max else 0.0] * width)
            with for_range(b, 0, g.kh, name="ky") as ky:
                r = b.add(ry, ky)
                row_ok = _in_range(b, r, r0, r1)
                iy = b.sub(_imin(b, _imax(b, r, i64(r0)), i64(r1 - 1)), i64(g.pad_top))
                with for_range(b, 0, g.kw, name="kx") as kx:
                    col = b.add(rx, kx)
                    ok = b.and_(row_ok, _in_range(b, col, c0, c1))
                    ix = b.sub(_imin(b, _imax(b, col, i64(c0)), i64(c1 - 1)), i64(g.pad_left))
                    at = b.add(b.mul(b.add(b.mul(iy, i64(w)), ix), i64(src.stride)), ch)
                    x = load(b, xp, ty, at)
                    if zero_data:
                        counted = b.and_(_in_range(b, r, m0, m1), _in_range(b, col, n0, n1))
                        x = b.select(counted, x, b.fmul(x, fconst(x, 0.0)))
                    v = b.select(ok, x, pad_value)
                    acc = b.load(slot, typ=ty)
                    if int8:
                        b.store(b.select(b.icmp_signed(">", v, acc), v, acc), slot)
                    else:
                        b.store(np_maximum(b, acc, v) if is_max else b.fadd(acc, v), slot)
            acc = b.load(slot, typ=ty)
            if not is_max:
                acc = b.fdiv(acc, splat(b, divisor, width) if masked else fconst(acc, float(g.kh * g.kw)))
            store(b, acc, yp, b.add(out_pix, ch))

        channel_blocks(b, c, lanes, block)
    b.ret_void()
    return fn


PAIRWISE_BLOCK = 128
"""numpy's ``PW_BLOCKSIZE``: runs longer than this are split in two for pairwise summation."""


def pairwise_sum(b: ir.IRBuilder, at: Callable[[ir.Value], ir.Value], start: int, n: int,
                 regs: list[ir.Value], ty: ir.Type) -> ir.Value:
    """numpy's float32 ``pairwise_sum`` of the ``n`` values ``at(start + i)`` (vectors: one sum per lane),
    addition for addition: below 8 values a plain sum from 0, up to 128 eight partial sums combined as
    ``((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`` then the rest, above that the two halves (split at a multiple
    of 8) summed recursively.  ``regs`` are 8 stack slots of type ``ty`` for the partial sums."""
    if n < 8:
        acc = None
        for i in range(n):
            v = at(i64(start + i))
            acc = b.fadd(fconst(v, 0.0), v) if acc is None else b.fadd(acc, v)
        return acc
    if n <= PAIRWISE_BLOCK:
        for j in range(8):
            b.store(at(i64(start + j)), regs[j])
        body_end = n - n % 8
        with for_range(b, 1, body_end // 8, name="pw") as k:
            base = b.add(i64(start), b.mul(k, i64(8)))
            for j in range(8):
                v = at(b.add(base, i64(j)))
                b.store(b.fadd(b.load(regs[j], typ=ty), v), regs[j])
        r = [b.load(regs[j], typ=ty) for j in range(8)]
        res = b.fadd(b.fadd(b.fadd(r[0], r[1]), b.fadd(r[2], r[3])), b.fadd(b.fadd(r[4], r[5]), b.fadd(r[6], r[7])))
        for i in range(body_end, n):
            res = b.fadd(res, at(i64(start + i)))
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return b.fadd(pairwise_sum(b, at, start, n2, regs, ty), pairwise_sum(b, at, start + n2, n - n2, regs, ty))


def _emit_global(ctx: KernelContext, is_max: bool) -> ir.Function:
    fn, b = new_function(ctx.module, ctx.name, 2)
    src = ctx.step.inputs[0]
    xp, yp = fn.args
    c, h, w = src.chw
    slots: dict = {}

    def block(ch: ir.Value, width: int) -> None:
        ty = vec(F32, width)
        if not is_max:  # numpy's mean: 0 + pairwise_sum(plane), then / count
            regs = [entry_alloca(b, ty, f"pw{width}_{j}") for j in range(8)]
            total = pairwise_sum(b, lambda p: load(b, xp, ty, b.add(b.mul(p, i64(src.stride)), ch)), 0, h * w,
                                 regs, ty)
            total = b.fadd(fconst(total, 0.0), total)
            store(b, b.fdiv(total, fconst(total, float(h * w))), yp, ch)
            return
        slot = _acc_slot(b, width, slots)
        b.store(ir.Constant(ty, [float("-inf") if is_max else 0.0] * width), slot)
        with for_range(b, 0, h * w, name="p") as p:
            x = load(b, xp, ty, b.add(b.mul(p, i64(src.stride)), ch))
            acc = b.load(slot, typ=ty)
            b.store(np_maximum(b, acc, x) if is_max else b.fadd(acc, x), slot)
        acc = b.load(slot, typ=ty)
        if not is_max:
            acc = b.fdiv(acc, fconst(acc, float(h * w)))
        store(b, acc, yp, ch)

    channel_blocks(b, c, ctx.lanes(32), block)
    b.ret_void()
    return fn


def _emit_adaptive(ctx: KernelContext, out_h: int, out_w: int, is_max: bool) -> ir.Function:
    fn, b = new_function(ctx.module, ctx.name, 2)
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    xp, yp = fn.args
    c, h, w = src.chw
    slots: dict = {}

    def bounds(i: ir.Value, size: int, out: int) -> tuple[ir.Value, ir.Value]:
        lo = b.sdiv(b.mul(i64(size), i), i64(out))
        hi = b.sdiv(b.add(b.mul(i64(size), b.add(i, i64(1))), i64(out - 1)), i64(out))
        return lo, hi

    with for_range(b, 0, out_h, name="oy") as oy, for_range(b, 0, out_w, name="ox") as ox:
        y0, y1 = bounds(oy, h, out_h)
        x0, x1 = bounds(ox, w, out_w)
        out_pix = b.mul(b.add(b.mul(oy, i64(out_w)), ox), i64(dst.stride))
        area = b.sitofp(b.mul(b.sub(y1, y0), b.sub(x1, x0)), F32)

        def block(ch: ir.Value, width: int) -> None:
            ty = vec(F32, width)
            slot = _acc_slot(b, width, slots)
            b.store(ir.Constant(ty, [float("-inf") if is_max else 0.0] * width), slot)
            with for_range(b, y0, y1, name="y") as y, for_range(b, x0, x1, name="x") as x:
                v = load(b, xp, ty, b.add(b.mul(b.add(b.mul(y, i64(w)), x), i64(src.stride)), ch))
                acc = b.load(slot, typ=ty)
                b.store(np_maximum(b, acc, v) if is_max else b.fadd(acc, v), slot)
            acc = b.load(slot, typ=ty)
            if not is_max:
                acc = b.fdiv(acc, splat(b, area, width))
            store(b, acc, yp, b.add(out_pix, ch))

        channel_blocks(b, c, ctx.lanes(32), block)
    b.ret_void()
    return fn


# ---- lowering ---------------------------------------------------------------------------------


def _check_shape(lw: Lowerer, layer: Layer, shape: tuple[int, ...]) -> None:
    inferred = tuple(lw.shape(layer.outputs[0]))
    if inferred != shape:
        raise Unsupported(f"an output of shape {shape} where shape inference says {inferred}")


@register_lowering("Pooling")
def lower_pooling(lw: Lowerer, layer: Layer) -> None:
    """Max / average pooling: global, adaptive or windowed."""
    p = layer.params
    kind = p["pooling_type"]
    if kind not in (0, 1):
        raise Unsupported(f"pooling_type {kind}")
    is_max = kind == 0
    windowed = not p["global_pooling"] and not p["adaptive_pooling"]
    # quantized values (quantize on write) pool as they are: max commutes with a monotone quantization
    keep_int8 = is_max and windowed and lw.input(layer, 0).dtype == "i8"
    src = lw.input(layer, 0) if keep_int8 else lw.input(layer, 0, "f32")
    c, h, w = src.chw
    if p["global_pooling"]:
        _check_shape(lw, layer, (c,))
        out = lw.output(layer, 0, "f32")
        lw.add("gpool", [src], [out], lambda ctx: _emit_global(ctx, is_max))
        return
    if p["adaptive_pooling"]:
        out_w = w if p["out_w"] == -233 else p["out_w"]
        out_h = h if p["out_h"] == -233 else p["out_h"]
        if out_w <= 0 or out_h <= 0:
            raise Unsupported(f"adaptive output size {out_h}x{out_w}")
        _check_shape(lw, layer, (c, out_h, out_w))
        out = lw.output(layer, 0, "f32")
        lw.add("apool", [src], [out], lambda ctx: _emit_adaptive(ctx, out_h, out_w, is_max))
        return
    g = window_geometry(layer, h, w, src.dims == 1)
    _check_shape(lw, layer, (c, g.oh, g.ow))
    out = lw.output(layer, 0, src.dtype)
    include_pad = bool(p["avgpool_count_include_pad"])
    lw.add("pool", [src], [out], lambda ctx: _emit_windowed(ctx, g, is_max, include_pad),
           macs=c * g.oh * g.ow * g.kh * g.kw, parallel=True)


__all__ = ["Window", "channel_blocks", "lower_pooling", "window_geometry"]
