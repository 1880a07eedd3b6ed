"""Softmax along ``0=axis`` of a 1-D, 2-D or 3-D blob, as ``backends/numpy/norm_ops.py`` computes it:
``e = exp(x - max(x))`` then ``e / sum(e)``, all in float32.

The simulation reads only ``0=axis`` (negative counts from the end); ``1=fixbug0`` is accepted and,
as there, has no effect.  An int8 input is refused: the simulation subtracts the maximum in
wrapping int8 arithmetic and takes a float16 exp (no contract worth matching; quantized graphs
never hand int8 to a Softmax).  Three passes per softmax: the maximum (NaN-propagating like ``np.max``),
``exp(x - max)`` written to the output, the sum, then the division of each output by the sum.
Where independent softmaxes are contiguous in memory (the channels of a 3-D blob for ``axis`` 1 or
2, the columns of a 2-D blob for ``axis`` 0) they run ``lanes`` at a time in vectors; a softmax
along contiguous elements (channels of a 3-D blob, the last axis) runs element by element.

The sum is numpy's own order: its ``pairwise_sum`` (8 running sums, halves above 128 terms)
when the reduced axis is numpy's innermost loop (every later axis has size 1), else the slices
added one after the other (checked against ``np.sum`` bit for bit).

Tolerance.  The maximum, the subtraction, the sum and the division are the same float32
operations in the same order as numpy's.  Only ``exp`` differs: the C library's ``expf`` here,
numpy's own SIMD exp there (each within an ulp or two of the true value).  Measured over 1-D to
3-D shapes with up to 1000 elements per softmax, inputs N(0, 0.1 .. 30): at most 4 ulp on an output
(3.2e-7 relative, 6e-8 absolute).  The tests use ``rtol=1e-6`` (about 8 ulp) and ``atol=1e-37``
(which only matters for subnormal outputs).
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from ncnnc.backends.llvm.irutil import F32, entry_alloca, for_range, i64, load, new_function, store, vec
from ncnnc.backends.llvm.kernels.arith import exp, fconst, maximum
from ncnnc.backends.llvm.lower import Lowerer, Unsupported, register_lowering
from ncnnc.backends.llvm.program import KernelContext, View
from ncnnc.core.ir import Layer

Dim = tuple[int, int, int]
"""``(count, source stride, destination stride)`` of one loop, in elements."""


def softmax_plan(src: View, dst: View, axis: int) -> tuple[list[Dim], Dim, int]:
    """Decompose the blob for a softmax along ``axis``: the loops over independent softmaxes
    (``outer``), the reduced axis, and how many independent softmaxes sit next to each other in
    both views (``inner``, stride 1)."""
    if src.dims == 1:
        return [], (src.shape[0], 1, 1), 1
    if src.dims == 2:
        h, w = src.shape
        return ([], (h, w, w), w) if axis == 0 else ([(h, w, w)], (w, 1, 1), 1)
    c, h, w = src.shape
    ss, ds = src.pixel_stride, dst.pixel_stride
    if axis == 0:
        return [(h * w, ss, ds)], (c, 1, 1), 1
    if axis == 1:
        return [(w, ss, ds)], (h, w * ss, w * ds), c
    return [(h, w * ss, w * ds)], (w, ss, ds), c


def _max(b: ir.IRBuilder, acc: ir.Value, v: ir.Value) -> ir.Value:
    """``np.max`` step: ``v`` when it is larger or NaN, and a NaN already found stays."""
    t = maximum(b, v, acc)
    return b.select(b.fcmp_unordered("uno", acc, acc), acc, t)


PAIRWISE_BLOCK = 128
"""numpy's ``PW_BLOCKSIZE``: a pairwise sum splits in halves above this length."""


def numpy_sums_pairwise(shape: tuple[int, ...], axis: int) -> bool:
    """True when numpy sums along ``axis`` pairwise (the reduced axis is the innermost loop: every
    later axis has size 1); otherwise it adds whole slices one after the other (sequentially)."""
    rest = 1
    for d in shape[axis + 1:]:
        rest *= d
    return rest == 1


def pairwise_sum(b: ir.IRBuilder, element: Callable[[ir.Value], ir.Value], start: int, n: int,
                 ty: ir.Type) -> ir.Value:
    """numpy's ``pairwise_sum`` of elements ``start .. start+n`` in its exact order (scalar or vector
    lanes, each lane its own sum): below 8 terms one after the other from 0; up to 128 terms eight
    running sums combined as ``((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`` then the rest one by one; above,
    the two halves (the first a multiple of 8 long) summed that way and added."""
    if n < 8:
        total = ir.Constant(ty, None)
        for i in range(n):
            total = b.fadd(total, element(i64(start + i)))
        return total
    if n <= PAIRWISE_BLOCK:
        slots = [entry_alloca(b, ty, f"pw{j}") for j in range(8)]
        for j, slot in enumerate(slots):
            b.store(element(i64(start + j)), slot)
        blocks = n // 8
        if blocks > 1:
            with for_range(b, 1, blocks, name="pw") as blk:
                base = b.add(i64(start), b.mul(blk, i64(8)))
                for j, slot in enumerate(slots):
                    b.store(b.fadd(b.load(slot, typ=ty), element(b.add(base, i64(j)))), slot)
        r = [b.load(slot, typ=ty) for slot in slots]
        total = b.fadd(b.fadd(b.fadd(r[0], r[1]), b.fadd(r[2], r[3])), b.fadd(b.fadd(r[4], r[5]), b.fadd(r[6], r[7])))
        for i in range(blocks * 8, n):
            total = b.fadd(total, element(i64(start + i)))
        return total
    half = n // 2
    half -= half % 8
    return b.fadd(pairwise_sum(b, element, start, half, ty), pairwise_sum(b, element, start + half, n - half, ty))


def emit_softmax(ctx: KernelContext, axis: int) -> ir.Function:
    """The three-pass softmax over every independent group of the step's input."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    sp, dp = fn.args
    outer, (n, rs, rd), inner = softmax_plan(src, dst, axis)
    lanes = ctx.lanes(32)
    pairwise = numpy_sums_pairwise(src.shape, axis)

    def group(s_base: ir.Value, d_base: ir.Value, width: int) -> None:
        ty = vec(F32, width) if width > 1 else F32
        slot = entry_alloca(b, ty, "red")
        b.store(load(b, sp, ty, s_base), slot)
        with for_range(b, 1, n, name="m") as i:
            b.store(_max(b, b.load(slot, typ=ty), load(b, sp, ty, b.add(s_base, b.mul(i, i64(rs))))), slot)
        mx = b.load(slot, typ=ty)
        if not pairwise:
            b.store(fconst(mx, 0.0), slot)
        with for_range(b, 0, n, name="e") as i:
            e = exp(b, b.fsub(load(b, sp, ty, b.add(s_base, b.mul(i, i64(rs)))), mx))
            store(b, e, dp, b.add(d_base, b.mul(i, i64(rd))))
            if not pairwise:
                b.store(b.fadd(b.load(slot, typ=ty), e), slot)
        if pairwise:
            total = b.fadd(fconst(mx, 0.0), pairwise_sum(b, lambda i: load(b, dp, ty, b.add(d_base, b.mul(i, i64(rd)))),
                                                          0, n, ty))
        else:
            total = b.load(slot, typ=ty)
        with for_range(b, 0, n, name="d") as i:
            at = b.add(d_base, b.mul(i, i64(rd)))
            store(b, b.fdiv(load(b, dp, ty, at), total), dp, at)

    def inner_loop(s_base: ir.Value, d_base: ir.Value) -> None:
        full, tail = divmod(inner, lanes) if inner > 1 else (0, inner)
        if full:
            with for_range(b, 0, full, name="v") as v:
                off = b.mul(v, i64(lanes))
                group(b.add(s_base, off), b.add(d_base, off), lanes)
        if tail:
            with for_range(b, full * lanes, inner, name="t") as t:
                group(b.add(s_base, t), b.add(d_base, t), 1)

    def nest(level: int, s_base: ir.Value, d_base: ir.Value) -> None:
        if level == len(outer):
            inner_loop(s_base, d_base)
            return
        count, ss, ds = outer[level]
        with for_range(b, 0, count, name=f"o{level}") as o:
            nest(level + 1, b.add(s_base, b.mul(o, i64(ss))), b.add(d_base, b.mul(o, i64(ds))))

    nest(0, i64(0), i64(0))
    b.ret_void()
    return fn


@register_lowering("Softmax")
def lower_softmax(lw: Lowerer, layer: Layer) -> None:
    """Softmax along the layer's axis of a float blob."""
    src = lw.input(layer, 0)
    if src.dtype != "f32":
        raise Unsupported(f"a {src.dtype} input (the simulation computes it in wrapping int8 and float16)")
    axis = layer.p("axis")
    axis = axis + src.dims if axis < 0 else axis
    if not 0 <= axis < src.dims:
        raise Unsupported(f"axis {layer.p('axis')} of a {src.dims}-D blob")
    out = lw.output(layer, 0, "f32")
    if src.size == 0:
        return
    lw.add("softmax", [src], [out], lambda ctx: emit_softmax(ctx, axis))
