"""int8 depthwise convolution with 16-bit products: two strategies.

One output channel per input channel, so the vectors run over channels (contiguous in a pixel of the
channels-last layout).  int8 x int8 products fit int16 (|p| <= 16129) and so does the sum of two of
them (<= 32258), so taps are taken in pairs.  A thread's share is a range of output rows; inside it,
each block of channels keeps its taps' weights in registers while it sweeps the row, and neighbouring
output pixels are computed together so that they load their shared input columns once.  Sums are exact,
so results are bit-identical to the simulation.

- :func:`emit_depthwise_pairs` (x86: AVX-512 VNNI ``vpdpwssd``, AVX2 ``vpmaddwd``): one instruction
  multiplies a pair of taps of every channel and adds both products to the int32 accumulators.
- :func:`emit_depthwise_i16` (every other target): the pair is multiplied and added in int16
  (``vpmullw``/``mul.8h``) and its sum widened once into the int32 accumulators.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from llvmlite import ir

from ncnnc.backends.llvm.irutil import I8, I16, I32, concat, for_range, i64, intrinsic, load, store_lanes, vec
from ncnnc.backends.llvm.program import KernelContext


def pack_depthwise_i16(weight: np.ndarray, kh: int, kw: int, channels: int, padded: int) -> np.ndarray:
    """``(c, kh, kw)`` int8 weights -> ``(kh * kw, padded)`` int16, zero in the padding channels."""
    packed = np.zeros((kh * kw, padded), np.int16)
    packed[:, :channels] = np.asarray(weight).reshape(channels, kh * kw).T
    return packed


def emit_depthwise_i16(ctx: KernelContext, g, packed: np.ndarray, epi, lanes: int) -> ir.Function:
    """The kernel; ``g`` a ``conv.ConvGeometry``, ``epi`` a ``conv.Epilogue`` padded to ``lanes``."""
    from ncnnc.backends.llvm.kernels.conv import _global

    fn, b = ctx.function()
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    xp, yp = fn.args[:2]
    cp, wp = src.chw[0], src.chw[2]
    weights = _global(ctx.module, f"{ctx.name}.w", packed)
    taps = [(ky, kx) for ky in range(g.kh) for kx in range(g.kw)]
    out_stride = dst.stride if dst.dims == 3 else g.n
    tail = g.n % lanes
    tile = min(3, g.ow)  # output pixels per step: neighbours share input columns (3 measured best)

    def block(oy: ir.Value, channel: ir.Value, width: int, valid: int) -> None:
        v8, v16, v32 = vec(I8, width), vec(I16, width), vec(I32, width)
        wvs = [load(b, weights, v16, b.add(i64(t * cp), channel)) for t in range(len(taps))]
        row_in = b.mul(b.mul(oy, i64(g.sh)), i64(wp))

        def pixels(ox0: ir.Value, count: int) -> None:
            loaded: dict[int, ir.Value] = {}  # input column offset -> widened vector, shared by the tile

            def column(offset: int) -> ir.Value:
                if offset not in loaded:
                    at = b.add(b.add(b.mul(b.add(row_in, b.mul(ox0, i64(g.sw))), i64(cp)), channel), i64(offset))
                    loaded[offset] = b.sext(load(b, xp, v8, at), v16)
                return loaded[offset]

            for p in range(count):
                acc = None
                for first in range(0, len(taps), 2):
                    pair = None
                    for t in range(first, min(first + 2, len(taps))):
                        ky, kx = taps[t]
                        prod = b.mul(column((ky * g.dh * wp + kx * g.dw + p * g.sw) * cp), wvs[t])
                        pair = prod if pair is None else b.add(pair, prod)
                    wide = b.sext(pair, v32)
                    acc = wide if acc is None else b.add(acc, wide)
                out = epi.apply(b, ctx.module, ctx.name, acc, channel)
                ox = b.add(ox0, i64(p))
                store_lanes(b, out, yp, b.add(b.mul(b.add(b.mul(oy, i64(g.ow)), ox), i64(out_stride)), channel),
                             valid)

        _row_runs(b, g.ow, tile, pixels)

    _sweep(ctx, b, fn, g, lanes, min(lanes, 1 << (tail - 1).bit_length()) if tail else 0, block)
    return fn


def _row_runs(b: ir.IRBuilder, ow: int, tile: int, pixels) -> None:
    """Calls ``pixels(ox0, count)`` over a row: a loop of ``tile``-pixel runs, then the rest."""
    steps, rest = divmod(ow, tile)
    with for_range(b, 0, steps, name="oxt") as t:
        pixels(b.mul(t, i64(tile)), tile)
    if rest:
        pixels(i64(steps * tile), rest)


def _sweep(ctx: KernelContext, b: ir.IRBuilder, fn: ir.Function, g, lanes: int, tail_width: int, block) -> None:
    """The loop nest of both kernels: this thread's output rows, then blocks of ``lanes`` channels (the last,
    partial one ``tail_width`` wide); calls ``block(oy, channel, width, valid)``.  Ends the function."""
    full, tail = divmod(g.n, lanes)
    first_row, last_row = ctx.split(b, fn, g.oh)
    with for_range(b, first_row, last_row, name="oy") as oy:
        if full:
            with for_range(b, 0, full, name="blk") as blk:
                block(oy, b.mul(blk, i64(lanes)), lanes, lanes)
        if tail:
            block(oy, i64(full * lanes), tail_width, tail)
    b.ret_void()


# --- x86: taps in pairs through a 16-bit dot instruction (vpdpwssd / vpmaddwd) ------------------------
#
# ``vpdpwssd acc, x, w`` adds ``x.lo * w.lo + x.hi * w.hi`` (int16 halves of each int32 lane) to each
# accumulator lane, exactly: two taps of a channel per lane in one instruction, the widening included.
# The two taps' inputs are interleaved with ``vpunpck{l,h}wd``, which works inside each 128-bit lane:
# of a block of W channels, the "low" accumulator holds channels 8L+j and the "high" one 8L+4+j
# (L a 128-bit lane, j < 4).  The epilogue's tables are stored in that order, and ``vpackssdw`` of the
# two halves (again per 128-bit lane) puts the int8 results back in channel order.  A tap pairs with
# its right neighbour when the two read adjacent input columns (the interleaved pair is then shared
# by neighbouring output pixels); the taps left over pair with each other, an odd one with zero.


@dataclass(frozen=True)
class PairDot:
    """A target's 16-bit pair dot: ``acc(int32) += x.lo * w.lo + x.hi * w.hi`` on W/2 int32 lanes."""

    width: int  # int16 lanes (channels of a block) of the widest vector
    vnni: bool  # vpdpwssd (AVX-512 VNNI) or vpmaddwd + vpaddd

    def __call__(self, b: ir.IRBuilder, acc: ir.Value, x: ir.Value, w: ir.Value) -> ir.Value:
        """One pair step for a vector of ``x.type.count`` int16 lanes."""
        n = x.type.count
        v32 = vec(I32, n // 2)
        if self.vnni:
            fn = intrinsic(b.module, f"llvm.x86.avx512.vpdpwssd.{n * 16}", v32, [v32] * 3)
            return b.call(fn, [acc, b.bitcast(x, v32), b.bitcast(w, v32)])
        name = {8: "llvm.x86.sse2.pmadd.wd", 16: "llvm.x86.avx2.pmadd.wd", 32: "llvm.x86.avx512.pmaddw.d.512"}[n]
        return b.add(acc, b.call(intrinsic(b.module, name, v32, [x.type, x.type]), [x, w]))


PAIR_DOTS = {"avx512vnni": PairDot(32, True), "avx2": PairDot(16, False)}
"""The targets (by ``int8_dot`` strategy) whose int8 depthwise layers take the pair kernel."""


def lane_order(width: int) -> np.ndarray:
    """Channel (within a block of ``width``) of each lane of the low then the high accumulator."""
    half = np.arange(width // 2)
    low = 8 * (half // 4) + half % 4
    return np.concatenate([low, low + 4])


def permute_blocks(values: np.ndarray, width: int) -> np.ndarray:
    """A per-channel table (length a multiple of ``width``) stored in accumulator-lane order per block."""
    return values.reshape(-1, width)[:, lane_order(width)].ravel()


@dataclass(frozen=True)
class _Operand:
    """One interleaved pair of a pixel: input taps ``a`` and ``b`` (``b`` None: zero), each ``(ky, column)``
    with the column relative to the tile's first input column, and the weight taps they multiply."""

    a: tuple[int, int]
    b: tuple[int, int] | None
    wa: int
    wb: int | None


def pair_plan(g, pixels: int) -> list[list[_Operand]]:
    """For each pixel of a tile, its taps grouped into pairs (see the section comment above)."""
    plan = []
    for p in range(pixels):
        at = {(ky, p * g.sw + kx * g.dw): ky * g.kw + kx for ky in range(g.kh) for kx in range(g.kw)}
        ops, left = [], []
        for (ky, col), tap in at.items():
            if tap is None:
                continue
            right = (ky, col + 1)
            if col % 2 == 0 and at.get(right) is not None:
                ops.append(_Operand((ky, col), right, tap, at[right]))
                at[right] = None
            else:
                left.append(((ky, col), tap))
        for i in range(0, len(left), 2):
            (pa, ta), rest = left[i], left[i + 1:i + 2]
            ops.append(_Operand(pa, rest[0][0] if rest else None, ta, rest[0][1] if rest else None))
        plan.append(ops)
    return plan


def pack_pairs(weight: np.ndarray, g, padded: int, width: int, keys: list[tuple[int, int | None]]) -> np.ndarray:
    """``(c, kh, kw)`` int8 weights -> int16 ``(len(keys), padded // width, 2, width)``: per weight pair and
    block, the low and the high accumulator's vector of interleaved ``(w[a], w[b])``."""
    taps = np.zeros((g.kh * g.kw + 1, padded), np.int16)  # the last row: the zero partner
    taps[:-1, :g.n] = np.asarray(weight).reshape(g.n, g.kh * g.kw).T
    order = lane_order(width)
    out = np.zeros((len(keys), padded // width, 2, width), np.int16)
    for k, (ta, tb) in enumerate(keys):
        wa = taps[ta].reshape(-1, width)[:, order].reshape(-1, 2, width // 2)
        wb = taps[-1 if tb is None else tb].reshape(-1, width)[:, order].reshape(-1, 2, width // 2)
        out[k, :, :, 0::2], out[k, :, :, 1::2] = wa, wb
    return out


def emit_depthwise_pairs(ctx: KernelContext, g, weight: np.ndarray, epi, dot: PairDot, tile: int = 3) -> ir.Function:
    """The pair kernel; ``g`` a ``conv.ConvGeometry``, ``epi`` a ``conv.Epilogue`` padded to ``dot.width``
    (in channel order: this kernel stores its tables in lane order)."""
    from ncnnc.backends.llvm.kernels.conv import _global

    fn, b = ctx.function()
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    xp, yp = fn.args[:2]
    cp, wp = src.chw[0], src.chw[2]
    out_stride = dst.stride if dst.dims == 3 else g.n
    tile = min(tile, g.ow)
    rest = g.ow % tile
    plans = {n: pair_plan(g, n) for n in {tile, rest} if n}
    keys = sorted({(op.wa, op.wb) for plan in plans.values() for ops in plan for op in ops},
                  key=lambda k: (k[0], -1 if k[1] is None else k[1]))
    key_index = {k: i for i, k in enumerate(keys)}
    tail = g.n % dot.width
    tail_width = max(8, 1 << (tail - 1).bit_length()) if tail else 0  # covers the last channels
    widths = {dot.width, tail_width} - {0}
    tables = {w: _global(ctx.module, f"{ctx.name}.wp{w}", pack_pairs(weight, g, cp, w, keys)) for w in widths}
    epis = {w: replace(epi, scale=None if epi.scale is None else permute_blocks(epi.scale, w),
                        bias=None if epi.bias is None else permute_blocks(epi.bias, w)) for w in widths}

    def block(oy: ir.Value, channel: ir.Value, width: int, valid: int) -> None:
        v8, v16, v32 = vec(I8, width), vec(I16, width), vec(I32, width // 2)
        nblocks = cp // width
        blk = b.udiv(channel, i64(width))

        def wvec(key: tuple[int, int | None], half: int) -> ir.Value:
            index = b.add(b.mul(b.add(b.mul(i64(key_index[key]), i64(nblocks)), blk), i64(2 * width)),
                          i64(half * width))
            return load(b, tables[width], v16, index)

        row_in = b.mul(b.mul(oy, i64(g.sh)), i64(wp))
        low_mask = [8 * (i // 4) + i % 4 for i in range(width // 2)]

        def pixels(ox0: ir.Value, count: int) -> None:
            base = b.add(b.mul(b.add(row_in, b.mul(ox0, i64(g.sw))), i64(cp)), channel)
            columns: dict[tuple[int, int], ir.Value] = {}
            pairs: dict[tuple, tuple[ir.Value, ir.Value]] = {}

            def column(at: tuple[int, int] | None) -> ir.Value:
                if at is None:
                    return ir.Constant(v16, None)
                if at not in columns:
                    ky, col = at
                    columns[at] = b.sext(load(b, xp, v8, b.add(base, i64((ky * g.dh * wp + col) * cp))), v16)
                return columns[at]

            def interleaved(op: _Operand) -> tuple[ir.Value, ir.Value]:
                if (op.a, op.b) not in pairs:
                    xa, xb = column(op.a), column(op.b)
                    lo = [m for i in low_mask for m in (i, width + i)]
                    hi = [m + 4 for m in lo]
                    pairs[(op.a, op.b)] = (b.shuffle_vector(xa, xb, ir.Constant(vec(I32, width), lo)),
                                           b.shuffle_vector(xa, xb, ir.Constant(vec(I32, width), hi)))
                return pairs[(op.a, op.b)]

            for p, ops in enumerate(plans[count]):
                acc = [ir.Constant(v32, None), ir.Constant(v32, None)]
                for op in ops:
                    x = interleaved(op)
                    for half in range(2):
                        acc[half] = dot(b, acc[half], x[half], wvec((op.wa, op.wb), half))
                both = concat(b, acc)
                out = epis[width].apply(b, ctx.module, f"{ctx.name}.e{width}", both, channel, int_type=I32)
                if epi.top_scale is not None:  # back in channel order, saturated to int16 then narrowed
                    lo, hi = (b.shuffle_vector(out, out, ir.Constant(vec(I32, width // 2),
                                                                     list(range(h * width // 2, (h + 1) * width // 2))))
                              for h in range(2))
                    out = b.trunc(_packssdw(b, lo, hi), v8)
                else:
                    inverse = np.argsort(lane_order(width))
                    out = b.shuffle_vector(out, out, ir.Constant(vec(I32, width), [int(i) for i in inverse]))
                ox = b.add(ox0, i64(p))
                store_lanes(b, out, yp, b.add(b.mul(b.add(b.mul(oy, i64(g.ow)), ox), i64(out_stride)), channel),
                            valid)

        _row_runs(b, g.ow, tile, pixels)

    _sweep(ctx, b, fn, g, dot.width, tail_width, block)
    return fn


def _packssdw(b: ir.IRBuilder, lo: ir.Value, hi: ir.Value) -> ir.Value:
    """``vpackssdw lo, hi``: int32 -> int16 with saturation, per 128-bit lane (4 of ``lo``, then 4 of ``hi``)."""
    n = lo.type.count
    name = {4: "llvm.x86.sse2.packssdw.128", 8: "llvm.x86.avx2.packssdw", 16: "llvm.x86.avx512.packssdw.512"}[n]
    return b.call(intrinsic(b.module, name, vec(I16, 2 * n), [lo.type, lo.type]), [lo, hi])
