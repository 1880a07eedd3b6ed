"""int8 depthwise convolution with 16-bit products: the strategy for every target.

One output channel per input channel, so the vectors run over channels (contiguous in a pixel of the
channels-last layout).  int8 x int8 products fit int16 (|p| <= 16129) and so does the sum of two of
them (<= 32258): taps are taken in pairs, multiplied and added in int16 (``vpmullw``/``mul.8h``), and
each pair's sum is widened once into the int32 accumulators.  Weights are stored pre-widened to
int16, tap-major.  A thread's share is a range of output rows; inside it, each block of channels
keeps its taps' weights in registers while it sweeps the row.  The sums are exact, so the result is
bit-identical to the simulation (and to the int32 kernel it replaces, about 2-3x slower).  Three
neighbouring output pixels are computed together so that they load their shared input columns once.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from ncnnc.backends.llvm.irutil import I8, I16, I32, for_range, i64, load, store_lanes, vec
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
    full, tail = divmod(g.n, lanes)
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

        steps, rest = divmod(g.ow, tile)
        with for_range(b, 0, steps, name="oxt") as t:
            pixels(b.mul(t, i64(tile)), tile)
        if rest:
            pixels(i64(steps * tile), rest)

    first_row, last_row = ctx.split(b, fn, g.oh)
    with for_range(b, first_row, last_row, name="oy") as oy:
        if full:
            with for_range(b, 0, full, name="blk") as blk:
                block(oy, b.mul(blk, i64(lanes)), lanes, lanes)
        if tail:  # the narrowest power-of-two vector that covers the last channels
            width = min(lanes, 1 << (tail - 1).bit_length())
            block(oy, i64(full * lanes), width, tail)
    b.ret_void()
    return fn
