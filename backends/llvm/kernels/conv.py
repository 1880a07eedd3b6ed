"""Convolution and ConvolutionDepthWise, int8 and fp32, as direct convolutions over channels-last
buffers: no im2col matrix is ever built.

The input is first prepared (:mod:`.quant`): quantized for int8 layers, zero padding materialised,
channels padded, so the kernel's loops have no bounds checks.  Weights are packed at compile time
into the order the kernel streams them:

- *general* (any kernel, stride, dilation, groups): for each output pixel and each block of ``VW``
  output channels, ``acc[VW] += x[tap, ci] * w[g, block, ky, kx, ci, 0:VW]``, with ``VW`` the
  target's int32 lanes; a ``tap`` input value is broadcast;
- *depthwise* (one input and one output channel per group): vectors run over channels,
  ``acc[c:c+VW] += x[tap, c:c+VW] * w[ky, kx, c:c+VW]``.

- *VNNI* (int8 general, target ``int8_dot == "avx512vnni"`` with the feature enabled): the input prepared
  as u8 (``q + 128``, 4-channel multiples), weights as ``[group][block][ky][kx][ci/4][16][4]``,
  ``vpdpbusd`` over a register tile of up to 4 blocks x 24/blocks output pixels of a row; accumulators start
  at ``-128 * sum(w)`` so the sums are exactly the signed ones (about 8-9x the generic int8 kernel on a
  56x56x64 -> 64 3x3 layer on Zen 4).

int8 sums are exact int32 (the simulation's sums are exact too), so results are bit-identical; the
epilogue is :func:`.arith.dequantize`, the fused activation and, for ``int8_scale_term > 100``,
requantization to int8 (a fused sigmoid calls the C library's ``expf``, which may differ from numpy's by an
ulp, and so, rarely, by one int8 step after requantization).  fp32 depthwise adds its products in tap order
like the simulation (bit-identical); the fp32 general kernel sums ``cin_g * kh * kw`` products in another
order than BLAS: each output is within ``2 K u sum|w x|`` (``u = 2**-24``) of the simulation's.

A 1x1 Convolution on a 1-D blob is ncnn's InnerProduct form: one pixel, pads and stride ignored.  A layer
whose output geometry disagrees with shape inference is refused rather than written out of bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from llvmlite import ir

from ncnnc.backends.llvm.irutil import (
    F32,
    I8,
    I32,
    entry_alloca,
    for_range,
    i64,
    load,
    new_function,
    splat,
    store,
    vec,
)
from ncnnc.backends.llvm.kernels.arith import SUPPORTED_ACTIVATIONS, activate, dequantize, float2int8
from ncnnc.backends.llvm.kernels.quant import prepare_f32, prepare_int8
from ncnnc.backends.llvm.lower import Lowerer, Unsupported, register_lowering
from ncnnc.backends.llvm.program import KernelContext, View
from ncnnc.backends.numpy.conv_ops import _pad_amounts
from ncnnc.backends.numpy.registry import INT8
from ncnnc.core.ir import Layer


@dataclass
class ConvGeometry:
    """Everything about a convolution that the kernel bakes in as constants."""

    c: int
    h: int
    w: int
    n: int
    group: int
    cin_g: int
    out_g: int
    kh: int
    kw: int
    dh: int
    dw: int
    sh: int
    sw: int
    pads: tuple[int, int, int, int]
    oh: int
    ow: int

    @property
    def depthwise(self) -> bool:
        """One input and one output channel per group."""
        return self.group > 1 and self.cin_g == 1 and self.out_g == 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass."""
        return self.n * self.cin_g * self.kh * self.kw * self.oh * self.ow


def geometry(layer: Layer, src: View) -> ConvGeometry:
    """The layer's geometry on an input view (1-D/2-D inputs are one-channel images, as in ncnn)."""
    p = layer.params
    grouped = layer.type == "ConvolutionDepthWise"
    if p["dynamic_weight"]:
        raise Unsupported("dynamic_weight=1")
    c, h, w = src.chw
    n, kw, kh = p["num_output"], p["kernel_w"], p["kernel_h"]
    dw, dh, sw, sh = p["dilation_w"], p["dilation_h"], p["stride_w"], p["stride_h"]
    if min(kw, kh, dw, dh, sw, sh) <= 0:
        raise Unsupported("a zero kernel, stride or dilation")
    group = p["group"] if grouped else 1
    size = layer.weights["weight"].data.size
    if group <= 0 or n % group or size % (n * kw * kh):
        raise Unsupported("weights that do not fit num_output/group")
    cin_g = size // (n * kw * kh)
    if cin_g * group != c:
        raise Unsupported(f"an input of {c} channels (the weights expect {cin_g * group})")
    ext_w, ext_h = dw * (kw - 1) + 1, dh * (kh - 1) + 1
    pads = _pad_amounts(p, w, h, ext_w, ext_h, sw, sh)
    if src.dims == 1:
        if ext_h > 1:
            raise Unsupported("a kernel taller than one row on a 1-D blob")
        pads = (0, 0, pads[2], pads[3])
    hp, wp = h + pads[0] + pads[1], w + pads[2] + pads[3]
    oh, ow = (hp - ext_h) // sh + 1, (wp - ext_w) // sw + 1
    if oh <= 0 or ow <= 0:
        raise Unsupported("a window larger than the padded input")
    return ConvGeometry(c, h, w, n, group, cin_g, n // group, kh, kw, dh, dw, sh, sw, tuple(pads), oh, ow)


@dataclass
class Epilogue:
    """Per-output-channel constants of the epilogue, padded to whole vectors per group."""

    int8: bool
    scale: np.ndarray | None  # float32, int8 only
    bias: np.ndarray | None  # float32
    act: int
    act_params: list
    top_scale: float | None  # requantize to int8 when set

    def apply(self, b: ir.IRBuilder, module: ir.Module, name: str, acc: ir.Value, index: ir.Value) -> ir.Value:
        """Turn one accumulator vector (output channels ``index .. index+VW`` of the padded table) into
        the stored values (float32, or int8 when requantizing)."""
        lanes = acc.type.count
        if self.int8:
            scale = load(b, _global(module, f"{name}.scale", self.scale), vec(F32, lanes), index)
            bias = None if self.bias is None else load(b, _global(module, f"{name}.bias", self.bias),
                                                        vec(F32, lanes), index)
            out = dequantize(b, acc, scale, bias)
        else:
            out = acc
            if self.bias is not None:
                out = b.fadd(out, load(b, _global(module, f"{name}.bias", self.bias), vec(F32, lanes), index))
        out = activate(b, out, self.act, self.act_params)
        if self.top_scale is not None:
            out = float2int8(b, b.fmul(out, splat(b, ir.Constant(F32, float(np.float32(self.top_scale))), lanes)))
        return out


def _global(module: ir.Module, name: str, data: np.ndarray) -> ir.GlobalVariable:
    from ncnnc.backends.llvm.irutil import add_constant

    if name in module.globals:
        return module.globals[name]
    return add_constant(module, name, data)


def _pad_channels(values: np.ndarray, group: int, out_g: int, blocks: int, lanes: int) -> np.ndarray:
    """``(group * out_g,)`` values -> ``(group * blocks * lanes,)`` with zeros in the padding lanes."""
    v = np.zeros((group, blocks * lanes), values.dtype)
    v[:, :out_g] = values.reshape(group, out_g)
    return v.ravel()


def _epilogue(layer: Layer, g: ConvGeometry, int8: bool, blocks: int, lanes: int) -> Epilogue:
    p = layer.params
    act, act_params = p["activation_type"], p["activation_params"]
    if act not in SUPPORTED_ACTIVATIONS:
        raise Unsupported(f"fused activation type {act}")
    groups, per = (1, g.n) if g.depthwise else (g.group, g.out_g)
    bias = layer.weight("bias").ravel().astype(np.float32) if p["bias_term"] else None
    if not int8:
        return Epilogue(False, None, None if bias is None else _pad_channels(bias, groups, per, blocks, lanes),
                        act, act_params, None)
    from ncnnc.backends.numpy.int8_ops import dequant_scales

    input_scale = float(layer.weight("bottom_int8_scales").ravel()[0])
    ws = layer.weight("weight_int8_scales").ravel()
    if ws.size == g.group and ws.size != g.n:
        ws = np.repeat(ws, g.out_g)
    scale = np.broadcast_to(dequant_scales(input_scale, ws), (g.n,)).astype(np.float32)
    term = p["int8_scale_term"]
    top = float(layer.weight("top_int8_scales").ravel()[0]) if term > 100 else None
    return Epilogue(True, _pad_channels(scale, groups, per, blocks, lanes),
                    None if bias is None else _pad_channels(bias.astype(np.float32), groups, per, blocks, lanes),
                    act, act_params, top)


def _store_block(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, index: ir.Value, valid: int) -> None:
    """Store the first ``valid`` lanes of ``value`` at ``ptr[index]`` (all of them as one vector store)."""
    if valid == value.type.count:
        store(b, value, ptr, index)
        return
    for lane in range(valid):
        store(b, b.extract_element(value, ir.Constant(I32, lane)), ptr, b.add(index, i64(lane)))


def _emit_general(ctx: KernelContext, g: ConvGeometry, wpacked: np.ndarray, epi: Epilogue, lanes: int,
                  int8: bool) -> ir.Function:
    """The general kernel: output pixel x block of ``lanes`` output channels, taps x input channels inside."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    xp, yp = fn.args
    cp, wp = src.chw[0], src.chw[2]
    blocks = -(-g.out_g // lanes)
    weights = _global(ctx.module, f"{ctx.name}.w", wpacked)
    elem = I8 if int8 else F32
    acc_ty = vec(I32 if int8 else F32, lanes)
    out_stride = dst.stride if dst.dims == 3 else g.n

    def block(pix_in: ir.Value, pix_out: ir.Value, grp: int, blk: ir.Value, valid: int) -> None:
        slot = entry_alloca(b, acc_ty, "acc")
        b.store(ir.Constant(acc_ty, None), slot)
        wblock = b.mul(b.add(i64(grp * blocks), blk), i64(g.kh * g.kw * g.cin_g * lanes))
        for ky in range(g.kh):
            for kx in range(g.kw):
                tap_in = b.add(pix_in, i64((ky * g.dh * wp + kx * g.dw) * cp + grp * g.cin_g))
                tap_w = b.add(wblock, i64((ky * g.kw + kx) * g.cin_g * lanes))
                with for_range(b, 0, g.cin_g, name="ci") as ci:
                    xv = load(b, xp, elem, b.add(tap_in, ci))
                    wv = load(b, weights, vec(elem, lanes), b.add(tap_w, b.mul(ci, i64(lanes))))
                    acc = b.load(slot, typ=acc_ty)
                    if int8:
                        acc = b.add(acc, b.mul(splat(b, b.sext(xv, I32), lanes), b.sext(wv, acc_ty)))
                    else:
                        acc = b.fadd(acc, b.fmul(splat(b, xv, lanes), wv))
                    b.store(acc, slot)
        acc = b.load(slot, typ=acc_ty)
        index = b.add(b.mul(b.add(i64(grp * blocks), blk), i64(lanes)), i64(0))
        out = epi.apply(b, ctx.module, ctx.name, acc, index)
        o_index = b.add(pix_out, b.add(i64(grp * g.out_g), b.mul(blk, i64(lanes))))
        _store_block(b, out, yp, o_index, valid)

    full, tail = divmod(g.out_g, lanes)
    with for_range(b, 0, g.oh, name="oy") as oy, for_range(b, 0, g.ow, name="ox") as ox:
        pix_in = b.mul(b.add(b.mul(b.mul(oy, i64(g.sh)), i64(wp)), b.mul(ox, i64(g.sw))), i64(cp))
        pix_out = b.mul(b.add(b.mul(oy, i64(g.ow)), ox), i64(out_stride))
        for grp in range(g.group):
            if full:
                with for_range(b, 0, full, name="blk") as blk:
                    block(pix_in, pix_out, grp, blk, lanes)
            if tail:
                block(pix_in, pix_out, grp, i64(full), tail)
    b.ret_void()
    return fn


def pack_general(weight: np.ndarray, g: ConvGeometry, lanes: int, dtype) -> np.ndarray:
    """``(n, cin_g, kh, kw)`` -> ``(group, blocks, kh, kw, cin_g, lanes)``, zero-padded output lanes."""
    blocks = -(-g.out_g // lanes)
    w = weight.reshape(g.group, g.out_g, g.cin_g, g.kh, g.kw)
    packed = np.zeros((g.group, blocks * lanes, g.cin_g, g.kh, g.kw), dtype)
    packed[:, :g.out_g] = w
    packed = packed.reshape(g.group, blocks, lanes, g.cin_g, g.kh, g.kw).transpose(0, 1, 4, 5, 3, 2)
    return np.ascontiguousarray(packed)


VNNI_LANES = 16
"""int32 lanes of one ``vpdpbusd`` zmm accumulator (16 output channels)."""

VNNI_ACCUMULATORS = 24
"""zmm accumulators a VNNI tile keeps live (of 32 registers: the rest hold weights and a broadcast)."""


def _features(target) -> set[str]:
    return {f[1:] for f in str(getattr(target, "features", "") or "").split(",") if f.startswith("+")}


def use_vnni(target, g: ConvGeometry) -> bool:
    """The AVX-512 VNNI kernel applies: the target asks for it *and* its feature string enables avx512vnni
    (which implies AVX-512F in LLVM; a feature only implied by the CPU name is not trusted: LLVM aborts on an
    intrinsic the target lacks), and every group's input channels start on a 4-channel boundary."""
    return (target.options.get("int8_dot") == "avx512vnni" and "avx512vnni" in _features(target)
            and (g.group == 1 or g.cin_g % 4 == 0))


def pack_vnni(weight: np.ndarray, g: ConvGeometry, cp: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, cin_g, kh, kw)`` int8 -> ``(group, blocks, kh, kw, cin4, 16, 4)`` bytes (zero-padded output lanes
    and input channels), and the per-output-channel ``128 * sum(w)`` that undoes the ``u8 = q + 128`` shift,
    as ``(group, blocks * 16)`` int32."""
    blocks = -(-g.out_g // VNNI_LANES)
    cin_p = cp if g.group == 1 else g.cin_g  # group 1 reads the channel padding too (zero weights there)
    w = weight.reshape(g.group, g.out_g, g.cin_g, g.kh, g.kw).astype(np.int32)
    full = np.zeros((g.group, blocks * VNNI_LANES, cin_p, g.kh, g.kw), np.int32)
    full[:, :g.out_g, :g.cin_g] = w
    comp = (128 * full.sum(axis=(2, 3, 4))).astype(np.int32)
    packed = full.reshape(g.group, blocks, VNNI_LANES, cin_p // 4, 4, g.kh, g.kw).transpose(0, 1, 5, 6, 3, 2, 4)
    return np.ascontiguousarray(packed.astype(np.int8)), comp.reshape(g.group, -1)


def _emit_vnni(ctx: KernelContext, g: ConvGeometry, packed: tuple[np.ndarray, np.ndarray], epi: Epilogue,
               lanes: int, int8: bool) -> ir.Function:
    """int8 general convolution with ``vpdpbusd`` (u8 input x s8 weights -> int32, 4 channels per lane).

    Register tile: ``nb`` blocks of 16 output channels x ``np`` output pixels of one row; for each tap and
    4 input channels, ``nb`` weight vectors are loaded once and each feeds ``np`` ``vpdpbusd`` whose other
    operand is one pixel's 4 input bytes broadcast.  Accumulators start at ``-128 * sum(w)`` (exact int32),
    which undoes the +128 of the u8 input; the sums are then exactly the signed ones.
    """
    from ncnnc.backends.llvm.irutil import intrinsic

    wpacked, comp = packed
    fn, b = new_function(ctx.module, ctx.name, 2)
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    xp, yp = fn.args
    cp, wp = src.chw[0], src.chw[2]
    cin4 = (cp if g.group == 1 else g.cin_g) // 4
    blocks = -(-g.out_g // VNNI_LANES)
    taps = g.kh * g.kw
    weights = _global(ctx.module, f"{ctx.name}.w", wpacked)
    negcomp = _global(ctx.module, f"{ctx.name}.comp", (-comp).astype(np.int32).ravel())
    v16 = vec(I32, VNNI_LANES)
    dot = intrinsic(ctx.module, "llvm.x86.avx512.vpdpbusd.512", v16, [v16, v16, v16])
    out_stride = dst.stride
    nb_full = min(blocks, 4)

    def tile(oy: ir.Value, ox0: ir.Value, grp: int, blk0: ir.Value, nb: int, npx: int, valid_last: int) -> None:
        slots = [[entry_alloca(b, v16, "acc") for _ in range(nb)] for _ in range(npx)]
        inits = [load(b, negcomp, v16, b.mul(b.add(i64(grp * blocks), b.add(blk0, i64(j))), i64(VNNI_LANES)))
                 for j in range(nb)]
        for row in slots:
            for j, slot in enumerate(row):
                b.store(inits[j], slot)
        base_in = [b.mul(b.add(b.mul(b.mul(oy, i64(g.sh)), i64(wp)), b.mul(b.add(ox0, i64(p)), i64(g.sw))), i64(cp))
                   for p in range(npx)]
        for ky in range(g.kh):
            for kx in range(g.kw):
                tap = ky * g.kw + kx
                off = (ky * g.dh * wp + kx * g.dw) * cp + grp * g.cin_g
                with for_range(b, 0, cin4, name="c4") as c4:
                    wvs = []
                    for j in range(nb):
                        wrow = b.add(b.mul(b.add(b.mul(b.add(i64(grp * blocks), b.add(blk0, i64(j))), i64(taps)),
                                                 i64(tap)), i64(cin4)), c4)
                        wvs.append(load(b, weights, v16, b.mul(wrow, i64(VNNI_LANES)), align=64))
                    for p in range(npx):
                        at = b.add(b.add(base_in[p], i64(off)), b.mul(c4, i64(4)))
                        word = b.load(b.gep(xp, [at], inbounds=True, source_etype=I8), typ=I32, align=1)
                        xs = splat(b, word, VNNI_LANES)
                        for j in range(nb):
                            acc = b.load(slots[p][j], typ=v16)
                            b.store(b.call(dot, [acc, xs, wvs[j]]), slots[p][j])
        for p in range(npx):
            pix_out = b.mul(b.add(b.mul(oy, i64(g.ow)), b.add(ox0, i64(p))), i64(out_stride))
            for j in range(nb):
                blk = b.add(blk0, i64(j))
                index = b.mul(b.add(i64(grp * blocks), blk), i64(VNNI_LANES))
                out = epi.apply(b, ctx.module, ctx.name, b.load(slots[p][j], typ=v16), index)
                o_index = b.add(pix_out, b.add(i64(grp * g.out_g), b.mul(blk, i64(VNNI_LANES))))
                _store_block(b, out, yp, o_index, valid_last if j == nb - 1 else VNNI_LANES)

    full_groups, rem_blocks = divmod(blocks, nb_full)
    tail_valid = g.out_g - (blocks - 1) * VNNI_LANES
    with for_range(b, 0, g.oh, name="oy") as oy:
        for grp in range(g.group):
            def blocks_of(blk0: ir.Value, nb: int, last: bool, grp: int = grp) -> None:
                npx = max(1, min(g.ow, VNNI_ACCUMULATORS // nb))
                rf, rr = divmod(g.ow, npx)
                valid = tail_valid if last else VNNI_LANES
                if rf:
                    with for_range(b, 0, rf, name="oxt") as t:
                        tile(oy, b.mul(t, i64(npx)), grp, blk0, nb, npx, valid)
                if rr:
                    tile(oy, i64(rf * npx), grp, blk0, nb, rr, valid)

            # full groups of nb_full blocks; the very last block may be partial (store fewer lanes)
            last_in_full = rem_blocks == 0 and full_groups > 0
            n_plain = full_groups - 1 if last_in_full else full_groups
            if n_plain:
                with for_range(b, 0, n_plain, name="bg") as bg:
                    blocks_of(b.mul(bg, i64(nb_full)), nb_full, False)
            if last_in_full:
                blocks_of(i64(n_plain * nb_full), nb_full, tail_valid != VNNI_LANES)
            if rem_blocks:
                blocks_of(i64(full_groups * nb_full), rem_blocks, True)
    b.ret_void()
    return fn


def _emit_depthwise(ctx: KernelContext, g: ConvGeometry, wpacked: np.ndarray, epi: Epilogue, lanes: int,
                    int8: bool) -> ir.Function:
    """Channel-vectorised depthwise kernel; products added in tap order."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    xp, yp = fn.args
    cp, wp = src.chw[0], src.chw[2]
    weights = _global(ctx.module, f"{ctx.name}.w", wpacked)
    elem = I8 if int8 else F32
    acc_ty = vec(I32 if int8 else F32, lanes)
    full, tail = divmod(g.n, lanes)

    def block(pix_in: ir.Value, pix_out: ir.Value, blk: ir.Value, valid: int) -> None:
        acc = None
        for ky in range(g.kh):
            for kx in range(g.kw):
                at = b.add(pix_in, b.add(i64((ky * g.dh * wp + kx * g.dw) * cp), b.mul(blk, i64(lanes))))
                xv = load(b, xp, vec(elem, lanes), at)
                wv = load(b, weights, vec(elem, lanes), b.add(i64((ky * g.kw + kx) * cp), b.mul(blk, i64(lanes))))
                prod = b.mul(b.sext(xv, acc_ty), b.sext(wv, acc_ty)) if int8 else b.fmul(xv, wv)
                acc = prod if acc is None else (b.add(acc, prod) if int8 else b.fadd(acc, prod))
        out = epi.apply(b, ctx.module, ctx.name, acc, b.mul(blk, i64(lanes)))
        _store_block(b, out, yp, b.add(pix_out, b.mul(blk, i64(lanes))), valid)

    with for_range(b, 0, g.oh, name="oy") as oy, for_range(b, 0, g.ow, name="ox") as ox:
        pix_in = b.mul(b.add(b.mul(b.mul(oy, i64(g.sh)), i64(wp)), b.mul(ox, i64(g.sw))), i64(cp))
        pix_out = b.mul(b.add(b.mul(oy, i64(g.ow)), ox), i64(dst.stride if dst.dims == 3 else g.n))
        if full:
            with for_range(b, 0, full, name="blk") as blk:
                block(pix_in, pix_out, blk, lanes)
        if tail:
            block(pix_in, pix_out, i64(full), tail)
    b.ret_void()
    return fn


def lower_conv(lw: Lowerer, layer: Layer, int8: bool) -> None:
    """Lower one Convolution / ConvolutionDepthWise (int8 or fp32)."""
    src = lw.input(layer, 0, channel_major_ok=True)  # every strategy reads it through a prepare step
    out_shape = lw.shape(layer.outputs[0])
    inner_product = src.dims == 1 and len(out_shape) == 1 and layer.type == "Convolution"
    if inner_product:  # ncnn's 1x1 Convolution on a 1-D blob: the blob is the channels of one pixel
        src = src.with_(shape=(src.shape[0], 1, 1), pixel_stride=src.shape[0])
    if int8 and src.dims != 3:
        raise Unsupported("int8 on a 1-D or 2-D blob")
    g = geometry(layer, src)
    if inner_product:  # one pixel: ncnn's InnerProduct path ignores the padding (and stride) params
        g = replace(g, pads=(0, 0, 0, 0), oh=1, ow=1)
    elif (g.n, g.oh, g.ow) != tuple(out_shape):  # e.g. top/bottom pads of a 1-D blob, which ncnn ignores
        raise Unsupported(f"an output of {g.n}x{g.oh}x{g.ow} where shape inference says {out_shape}")
    weight = layer.weight("weight")
    lanes = max(lw.target.options.get("vector_bits", 128) // 32, 4) if lw.target.options.get("vector_bits") else 4
    scale = float(layer.weight("bottom_int8_scales").ravel()[0]) if int8 else 1.0
    if g.depthwise and int8:  # 16-bit products, taps in pairs (kernels/depthwise.py)
        from ncnnc.backends.llvm.kernels.depthwise import emit_depthwise_i16, pack_depthwise_i16

        dw_lanes = max(lw.target.options.get("vector_bits", 128) // 16, 8)
        epi = _epilogue(layer, g, int8, -(-g.n // dw_lanes), dw_lanes)
        if epi.top_scale is None and layer.outputs[0] in lw.write_scales:
            epi = replace(epi, top_scale=lw.write_scales[layer.outputs[0]])
        prepared = prepare_int8(lw, src, scale, g.pads, dw_lanes)
        packed_dw = pack_depthwise_i16(weight, g.kh, g.kw, g.n, prepared.chw[0])
        out = lw.output(layer, 0, "i8" if epi.top_scale is not None else "f32")
        lw.add("dwconv", [prepared], [out], lambda ctx: emit_depthwise_i16(ctx, g, packed_dw, epi, dw_lanes),
               macs=g.macs, parallel=True)
        return
    if g.depthwise:
        blocks = -(-g.n // lanes)
        epi = _epilogue(layer, g, int8, blocks, lanes)
        prepared = prepare_int8(lw, src, scale, g.pads, lanes) if int8 else prepare_f32(lw, src, g.pads, lanes,
                                                                                  layer.p("pad_value"))
        wk = np.zeros((g.kh * g.kw, blocks * lanes), np.int8 if int8 else np.float32)
        wk[:, :g.n] = weight.reshape(g.n, g.kh * g.kw).T
        emitter, packed = _emit_depthwise, wk
    elif int8 and use_vnni(lw.target, g):
        lanes = VNNI_LANES
        epi = _epilogue(layer, g, int8, -(-g.out_g // lanes), lanes)
        prepared = prepare_int8(lw, src, scale, g.pads, channel_multiple=4, unsigned=True)
        packed = pack_vnni(weight, g, prepared.chw[0])
        emitter = _emit_vnni
    else:
        blocks = -(-g.out_g // lanes)
        epi = _epilogue(layer, g, int8, blocks, lanes)
        prepared = (prepare_int8(lw, src, scale, g.pads) if int8
                    else prepare_f32(lw, src, g.pads, 1, layer.p("pad_value")))
        packed = pack_general(weight, g, lanes, np.int8 if int8 else np.float32)
        emitter = _emit_general
    if epi.top_scale is None and layer.outputs[0] in lw.write_scales:  # quantize on write
        epi = replace(epi, top_scale=lw.write_scales[layer.outputs[0]])
    dtype = "i8" if epi.top_scale is not None else "f32"
    out = lw.output(layer, 0, dtype)
    if inner_product:
        out = out.with_(shape=(g.n, 1, 1), pixel_stride=g.n)

    def emit(ctx: KernelContext) -> ir.Function:
        return emitter(ctx, g, packed, epi, lanes, int8)

    lw.add("dwconv" if g.depthwise else "conv", [prepared], [out], emit, macs=g.macs)


for _type in ("Convolution", "ConvolutionDepthWise"):
    register_lowering(_type)(lambda lw, layer: lower_conv(lw, layer, False))
    register_lowering(_type, INT8)(lambda lw, layer: lower_conv(lw, layer, True))

