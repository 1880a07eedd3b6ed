"""int8 inputs of the convolution kernels, and the Quantize / Dequantize / Requantize layers.

:func:`prepare_int8` makes the buffer an int8 kernel reads: the input quantized with the layer's
input scale (``float2int8(x * scale)``; an int8 blob is taken as it is), zero padding materialised
around it, channels padded to a multiple the kernel wants.  ``u8`` form stores ``q + 128`` (the
operand form of x86's ``vpdpbusd``); its padding is 128, i.e. zero.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from ncnnc.backends.llvm.irutil import (
    DTYPES,
    F32,
    I1,
    I8,
    I16,
    I32,
    PTR,
    VOID,
    concat,
    for_range,
    gep,
    i64,
    intrinsic,
    load,
    new_function,
    splat,
    store,
    vec,
)
from ncnnc.backends.llvm.kernels.arith import dequantize, float2int8
from ncnnc.backends.llvm.lower import Lowerer, Unsupported, register_lowering
from ncnnc.backends.llvm.program import KernelContext, View
from ncnnc.core.ir import Layer


def memset(b: ir.IRBuilder, ptr: ir.Value, value: int, nbytes: int) -> None:
    """``memset(ptr, value, nbytes)``."""
    fn = intrinsic(b.module, "llvm.memset.p0.i64", VOID, [PTR, I8, ir.IntType(64), I1])
    b.call(fn, [ptr, ir.Constant(I8, value), i64(nbytes), ir.Constant(I1, 0)])


def element_index(b: ir.IRBuilder, view: View, pixel: ir.Value, ch: ir.Value) -> ir.Value:
    """Index of element ``ch`` of pixel ``pixel`` (``y * w + x``) in ``view``, channel-major or channels-last."""
    if view.channel_major:
        _c, h, w = view.chw
        return b.add(b.mul(ch, i64(h * w)), pixel)
    return b.add(b.mul(pixel, i64(view.stride)), ch)


ROW_RUN = 16
"""Pixels of an image row that :func:`prepare_int8` quantizes and interleaves as one vector."""


def prepare_int8(lw: Lowerer, src: View, scale: float, pads: tuple[int, int, int, int],
                 channel_multiple: int = 1, unsigned: bool = False, wide: bool = False) -> View:
    """Add a step that writes ``src`` quantized, padded (``top, bottom, left, right``; negative crops)
    and channel-padded into a new buffer; returns its view (3-D, dense, dtype ``i8`` or ``u8``).

    ``wide`` stores each value sign-extended to int16 (the operand form of x86's ``vpmaddwd``); the view is
    then an ``i8`` view of twice the padded channels (two bytes per value) that only its kernel reads."""
    c, h, w = src.chw
    top, bottom, left, right = pads
    cp = -(-c // channel_multiple) * channel_multiple
    hp, wp = h + top + bottom, w + left + right
    width = 2 if wide else 1  # bytes per value
    out = lw.temp("u8" if unsigned else "i8", (cp * width, hp, wp))
    src3 = src.with_(shape=(c, h, w), pixel_stride=src.stride) if src.dims < 3 else src

    def emit(ctx: KernelContext) -> ir.Function:
        fn, b = ctx.function()
        sp, dp = fn.args[:2]
        padded = top > 0 or bottom > 0 or left > 0 or right > 0 or cp != c
        y0, y1 = max(0, -top), min(h, h + bottom) if bottom < 0 else h
        x0, x1 = max(0, -left), min(w, w + right) if right < 0 else w
        first, last = ctx.split(b, fn, hp)  # this thread's rows of the padded buffer
        with for_range(b, first, last, name="r") as r:
            if padded:
                memset(b, gep(b, dp, I8, b.mul(r, i64(wp * cp * width))), 128 if unsigned else 0, wp * cp * width)
            y = b.sub(r, i64(top))
            inside = b.and_(b.icmp_signed(">=", y, i64(y0)), b.icmp_signed("<", y, i64(y1)))
            def element(x: ir.Value, ch: ir.Value) -> None:
                v = load(b, sp, DTYPES[src.dtype], element_index(b, src3, b.add(b.mul(y, i64(w)), x), ch))
                q = v if src.dtype == "i8" else float2int8(b, b.fmul(v, ir.Constant(F32, float(np.float32(scale)))))
                if unsigned:
                    q = b.xor(q, ir.Constant(I8, 0x80))
                if wide:
                    q = b.sext(q, I16)
                store(b, q, dp, b.add(b.mul(b.add(b.mul(r, i64(wp)), b.add(x, i64(left))), i64(cp)), ch))

            def pixel_run(x: ir.Value) -> None:
                """ROW_RUN pixels from ``x``: each channel's row quantized as a vector, the channels
                interleaved (zero in the padding channels) and stored as one vector."""
                qs = []
                for ch in range(c):
                    v = load(b, sp, vec(DTYPES[src.dtype], ROW_RUN),
                             element_index(b, src3, b.add(b.mul(y, i64(w)), x), i64(ch)))
                    qs.append(v if src.dtype == "i8" else
                              float2int8(b, b.fmul(v, splat(b, ir.Constant(F32, float(np.float32(scale))), ROW_RUN))))
                lanes = concat(b, [*qs, ir.Constant(vec(I8, ROW_RUN), None)])
                mask = [j * ROW_RUN + i if j < c else c * ROW_RUN for i in range(ROW_RUN) for j in range(cp)]
                q = b.shuffle_vector(lanes, lanes, ir.Constant(vec(I32, len(mask)), mask))
                if unsigned:
                    q = b.xor(q, ir.Constant(vec(I8, len(mask)), [0x80] * len(mask)))
                if wide:
                    q = b.sext(q, vec(I16, len(mask)))
                store(b, q, dp, b.mul(b.add(b.mul(r, i64(wp)), b.add(x, i64(left))), i64(cp)))

            with b.if_then(inside):
                if src.channel_major and c <= 4 and cp <= 8:  # an image: runs of pixels as vectors
                    runs = (x1 - x0) // ROW_RUN
                    with for_range(b, 0, runs, name="xr") as run:
                        pixel_run(b.add(i64(x0), b.mul(run, i64(ROW_RUN))))
                    with for_range(b, x0 + runs * ROW_RUN, x1, name="x") as x:
                        for ch in range(c):
                            element(x, i64(ch))
                elif src.channel_major:  # innermost loop along the contiguous row of one channel
                    with for_range(b, 0, c, name="c") as ch, for_range(b, x0, x1, name="x") as x:
                        element(x, ch)
                else:
                    with for_range(b, x0, x1, name="x") as x, for_range(b, 0, c, name="c") as ch:
                        element(x, ch)
        b.ret_void()
        return fn

    if src.dtype not in ("f32", "i8"):
        raise Unsupported(f"int8 input from a {src.dtype} blob")
    lw.add("prepare_int8", [src], [out], emit, parallel=True)
    return out


def _per_channel(values: np.ndarray, c: int) -> np.ndarray:
    v = np.asarray(values, np.float32).ravel()
    return np.broadcast_to(v, (c,)) if v.size == 1 else v


def _elementwise_quant(lw: Lowerer, layer: Layer, out_dtype: str, body) -> None:
    src = lw.input(layer, 0)
    if src.dtype not in ("f32", "i8"):
        raise Unsupported(f"input of dtype {src.dtype}")
    out = lw.output(layer, 0, out_dtype)
    c, h, w = src.chw

    def emit(ctx: KernelContext) -> ir.Function:
        fn, b = new_function(ctx.module, ctx.name, 2)
        sp, dp = fn.args
        per = src.shape[0]  # ncnn's channel axis: c, the rows of a 2-D blob, the elements of a 1-D one
        with for_range(b, 0, h * w, name="p") as p, for_range(b, 0, c, name="c") as ch:
            v = load(b, sp, DTYPES[src.dtype], b.add(b.mul(p, i64(src.stride)), ch))
            v = b.sitofp(v, F32) if src.dtype == "i8" else v
            index = ch if src.dims == 3 else (b.udiv(p, i64(w)) if src.dims == 2 else p)
            store(b, body(b, v, index, per), dp, b.add(b.mul(p, i64(out.stride)), ch))
        b.ret_void()
        return fn

    lw.add(layer.type.lower(), [src], [out], emit)


def _table(b: ir.IRBuilder, values: np.ndarray, name: str, ty: ir.Type, index: ir.Value) -> ir.Value:
    from ncnnc.backends.llvm.irutil import add_constant

    g = add_constant(b.module, name, values)
    return load(b, g, ty, index)


UNROLLED_SCALE_CHANNELS = 64
"""Scale layers with at most this many channels get one straight-line step per channel (constants, no table)."""


@register_lowering("Scale")
def lower_scale(lw: Lowerer, layer: Layer) -> None:
    """``x * scale + bias`` per channel, each rounded (as the simulation), with the scales from the weights
    (what ``--exact-input`` writes in front of a model's first convolution).  A 3-D blob of few channels is
    read where it is (the model input stays channel-major: no conversion pass) and written channels-last,
    every channel's constants in the code, so the pixel loop vectorizes."""
    if layer.p("scale_data_size") == -233:
        raise Unsupported("with the scales as a second input")
    scale = np.asarray(layer.weight("scale"), np.float32).ravel()
    bias = np.asarray(layer.weight("bias"), np.float32).ravel() if layer.p("bias_term") else None
    src = lw.input(layer, 0, channel_major_ok=True)
    if src.dims != 3 or src.dtype != "f32" or src.chw[0] > UNROLLED_SCALE_CHANNELS:
        _elementwise_quant(lw, layer, "f32", _dequant_body(scale, bias, fused=False))
        return
    c, h, w = src.chw
    scales, biases = _per_channel(scale, c), None if bias is None else _per_channel(bias, c)
    out = lw.output(layer, 0, "f32")

    def emit(ctx: KernelContext) -> ir.Function:
        fn, b = new_function(ctx.module, ctx.name, 2)
        sp, dp = fn.args
        with for_range(b, 0, h * w, name="p") as pixel:
            base = b.mul(pixel, i64(out.stride))
            for ch in range(c):
                v = load(b, sp, F32, element_index(b, src, pixel, i64(ch)))
                v = dequantize(b, v, ir.Constant(F32, float(scales[ch])),
                               None if biases is None else ir.Constant(F32, float(biases[ch])), fused=False)
                store(b, v, dp, b.add(base, i64(ch)))
        b.ret_void()
        return fn

    lw.add("scale", [src], [out], emit)


@register_lowering("Quantize")
def lower_quantize(lw: Lowerer, layer: Layer) -> None:
    """``float2int8(x * scale)`` with one scale or one per channel."""
    scale = np.asarray(layer.weight("scale"), np.float32).ravel()

    def body(b, v, index, per):
        s = ir.Constant(F32, float(scale[0])) if scale.size == 1 else \
            _table(b, _per_channel(scale, per), f"{b.function.name}.scale", F32, index)
        return float2int8(b, b.fmul(v, s))

    _elementwise_quant(lw, layer, "i8", body)


def _scale_bias(layer: Layer, scale_name: str):
    scale = np.asarray(layer.weight(scale_name), np.float32).ravel()
    bias = np.asarray(layer.weight("bias"), np.float32).ravel() if layer.p("bias_data_size") else None
    return scale, bias


def _dequant_body(scale: np.ndarray, bias: np.ndarray | None, fused: bool = True):
    """``v * scale + bias`` per channel from tables: one fma, or (not ``fused``) two roundings."""
    def body(b, v, index, per):
        s = _table(b, _per_channel(scale, per).astype(np.float32), f"{b.function.name}.scale", F32, index)
        bb = None if bias is None else _table(b, _per_channel(bias, per).astype(np.float32),
                                              f"{b.function.name}.bias", F32, index)
        return dequantize(b, v, s, bb, fused)

    return body


@register_lowering("Dequantize")
def lower_dequantize(lw: Lowerer, layer: Layer) -> None:
    """``x * scale + bias`` (int32 values arriving as numbers) -> float."""
    scale, bias = _scale_bias(layer, "scale")
    _elementwise_quant(lw, layer, "f32", _dequant_body(scale, bias))


@register_lowering("Requantize")
def lower_requantize(lw: Lowerer, layer: Layer) -> None:
    """``float2int8(activation(x * scale_in + bias) * scale_out)``."""
    from ncnnc.backends.llvm.kernels.arith import SUPPORTED_ACTIVATIONS, activate

    scale_in, bias = _scale_bias(layer, "scale_in")
    scale_out = np.asarray(layer.weight("scale_out"), np.float32).ravel()
    act, params = layer.p(3), layer.p(4)
    if act not in SUPPORTED_ACTIVATIONS:
        raise Unsupported(f"activation type {act}")
    deq = _dequant_body(scale_in, bias)

    def body(b, v, index, per):
        x = activate(b, deq(b, v, index, per), act, params)
        s = ir.Constant(F32, float(scale_out[0])) if scale_out.size == 1 else \
            _table(b, _per_channel(scale_out, per), f"{b.function.name}.scale_out", F32, index)
        return float2int8(b, b.fmul(x, s))

    _elementwise_quant(lw, layer, "i8", body)


def prepare_f32(lw: Lowerer, src: View, pads: tuple[int, int, int, int], channel_multiple: int = 1,
                pad_value: float | np.ndarray = 0.0) -> View:
    """Like :func:`prepare_int8` for float kernels: ``src`` copied (int8 converted) with ``pad_value`` around
    (one value, or one per channel)."""
    c, h, w = src.chw
    top, bottom, left, right = pads
    cp = -(-c // channel_multiple) * channel_multiple
    if not any(pads) and cp == c and src.dtype == "f32" and src.dims == 3 and not src.channel_major:
        return src
    hp, wp = h + top + bottom, w + left + right
    out = lw.temp("f32", (cp, hp, wp))

    def emit(ctx: KernelContext) -> ir.Function:
        fn, b = new_function(ctx.module, ctx.name, 2)
        sp, dp = fn.args
        if np.ndim(pad_value):  # one value per channel, the rounding-up channels 0
            from ncnnc.backends.llvm.irutil import add_constant

            values = np.zeros(cp, np.float32)
            values[:c] = pad_value
            fills = add_constant(b.module, f"{ctx.name}.fill", values)
            with for_range(b, 0, hp * wp, name="e") as e, for_range(b, 0, cp, name="f") as f:
                store(b, load(b, fills, F32, f), dp, b.add(b.mul(e, i64(cp)), f))
        elif any(pads) or cp != c:
            fill = ir.Constant(F32, float(np.float32(pad_value)))
            with for_range(b, 0, cp * hp * wp, name="e") as e:
                store(b, fill, dp, e)
        y0, y1 = max(0, -top), min(h, h + bottom) if bottom < 0 else h
        x0, x1 = max(0, -left), min(w, w + right) if right < 0 else w
        with for_range(b, y0, y1, name="y") as y, for_range(b, x0, x1, name="x") as x:
            pixel = b.add(b.mul(y, i64(w)), x)
            d_pix = b.mul(b.add(b.mul(b.add(y, i64(top)), i64(wp)), b.add(x, i64(left))), i64(cp))
            with for_range(b, 0, c, name="c") as ch:
                v = load(b, sp, DTYPES[src.dtype], element_index(b, src, pixel, ch))
                store(b, v if src.dtype == "f32" else b.sitofp(v, F32), dp, b.add(d_pix, ch))
        b.ret_void()
        return fn

    lw.add("prepare_f32", [src], [out], emit)
    return out
