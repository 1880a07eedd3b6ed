"""Softmax along ``0=axis`` of a 1-D, 2-D or 3-D blob, as ``backends/numpy/norm_ops.py`` computes it:
``e = exp(x - max(x))`` then ``e / sum(e)``, all in float32.

The simulation reads only ``0=axis`` (negative counts from the end); ``1=fixbug0`` is accepted and,
as there, has no effect.  An int8 input is refused: the simulation subtracts the maximum in
wrapping int8 arithmetic and takes a float16 exp (no contract worth matching; quantized graphs
never hand int8 to a Softmax).  Three passes per softmax: the maximum (NaN-propagating like ``np.max``),
``exp(x - max)`` written to the output and summed, then the division of each output by the sum.
Where independent softmaxes are contiguous in memory (the channels of a 3-D blob for ``axis`` 1 or
2, the columns of a 2-D blob for ``axis`` 0) they run ``lanes`` at a time in vectors; a softmax
along contiguous elements (channels of a 3-D blob, the last axis) runs element by element.

Tolerance.  The maximum, the subtraction and the division are the same float32 operations as
numpy's.  Two things differ: ``exp`` is the C library's ``expf`` (numpy uses its own SIMD exp, which
may be an ulp or two away), and the sum is sequential where numpy sums pairwise (last axis) — a few
ulps on the sum.  Measured over the tests' shapes (up to 64 elements per softmax, inputs N(0, 3)):
at most 3 ulp on an output, i.e. ``rtol=1e-6`` (about 8 ulp) covers it with margin; the tests use
``rtol=1e-6, atol=1e-37`` (the atol only matters for subnormal outputs).
"""

from __future__ import annotations

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


def emit_softmax(ctx: KernelContext, axis: int) -> ir.Function:
    """The three-pass softmax over every independent group of the step's input."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    sp, dp = fn.args
    outer, (n, rs, rd), inner = softmax_plan(src, dst, axis)
    lanes = ctx.lanes(32)

    def group(s_base: ir.Value, d_base: ir.Value, width: int) -> None:
        ty = vec(F32, width) if width > 1 else F32
        slot = entry_alloca(b, ty, "red")
        b.store(load(b, sp, ty, s_base), slot)
        with for_range(b, 1, n, name="m") as i:
            b.store(_max(b, b.load(slot, typ=ty), load(b, sp, ty, b.add(s_base, b.mul(i, i64(rs))))), slot)
        mx = b.load(slot, typ=ty)
        b.store(fconst(mx, 0.0), slot)
        with for_range(b, 0, n, name="e") as i:
            e = exp(b, b.fsub(load(b, sp, ty, b.add(s_base, b.mul(i, i64(rs)))), mx))
            store(b, e, dp, b.add(d_base, b.mul(i, i64(rd))))
            b.store(b.fadd(b.load(slot, typ=ty), e), slot)
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
