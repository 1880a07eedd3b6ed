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

- *dot-product tiles* (int8 general, chosen by :func:`dot_strategy` from the target's ``int8_dot`` when its
  feature string enables the instruction): one parameterised template (:class:`DotScheme`,
  :func:`_emit_dot`), a register tile of up to ``max_blocks`` blocks of ``lanes`` output channels x a run of
  output pixels of a row, weights packed as ``[group][block][ky][kx][ci/k][lanes][k]``, each instruction fed
  one pixel's ``k`` inputs broadcast as a 32-bit word:

  - ``avx512vnni`` (``vpdpbusd``, 16 x 4): the input prepared as u8 (``q + 128``); accumulators start at
    ``-128 * sum(w)`` so the sums are exactly the signed ones;
  - ``avx2`` (``vpmaddwd``, 8 x 2; ``x86-64-v3``): input prepared and weights packed as int16, so every
    product and pair sum is exact (``|sum| <= 2 * 127 * 128``; ``vpmaddubsw`` would saturate at int16);
  - ``sdot`` (armv8.2 dotprod, 4 x 4): signed x signed, no shift;

  and ``smmla`` (armv8.6 i8mm, :func:`_emit_smmla`): a 2x8 by 8x2 int8 product per instruction, two output
  pixels x two output channels x 8 input channels; accumulators shuffled per pixel before the epilogue.
  Taps stay rolled loops and the epilogue runs as a loop over a tile's pixels, which keeps codegen time low.
  One thread, Zen 4 (``bench/bench_conv_int8.py``): 56x56x64 -> 64 3x3 ``vpdpbusd`` 155 GMAC/s, ``vpmaddwd``
  77 (the generic int8 kernel 16-20); 28x28x128 -> 128 3x3: 181 and 81 (generic 17-20).

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

import functools
from dataclasses import dataclass, replace

import numpy as np
from llvmlite import ir

from ncnnc.backends.llvm.irutil import (
    F32,
    I8,
    I16,
    I32,
    entry_alloca,
    for_range,
    i32,
    i64,
    intrinsic,
    load,
    new_function,
    splat,
    store_lanes,
    vec,
)
from ncnnc.backends.llvm.kernels.arith import SUPPORTED_ACTIVATIONS, activate, bounds_after, dequantize, float2int8
from ncnnc.backends.llvm.kernels.quant import prepare_f32, prepare_int8
from ncnnc.backends.llvm.lower import Lowerer, Unsupported, register_lowering
from ncnnc.backends.llvm.program import KernelContext, View
from ncnnc.backends.numpy.conv_ops import _pad_amounts
from ncnnc.backends.numpy.registry import INT8
from ncnnc.core.backend import Target
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
    fused: bool = True  # dequantize with one fma; False: multiply, then add the bias (x86 packed depthwise)

    def apply(self, b: ir.IRBuilder, module: ir.Module, name: str, acc: ir.Value, index: ir.Value,
              int_type: ir.Type = I8) -> ir.Value:
        """Turn one accumulator vector (output channels ``index .. index+VW`` of the padded table) into
        the stored values (float32, or int8 when requantizing: in ``int_type`` lanes)."""
        lanes = acc.type.count
        if self.int8:
            scale = load(b, _global(module, f"{name}.scale", self.scale), vec(F32, lanes), index)
            bias = None if self.bias is None else load(b, _global(module, f"{name}.bias", self.bias),
                                                        vec(F32, lanes), index)
            out = dequantize(b, acc, scale, bias, self.fused)
        else:
            out = acc
            if self.bias is not None:
                out = b.fadd(out, load(b, _global(module, f"{name}.bias", self.bias), vec(F32, lanes), index))
        out = activate(b, out, self.act, self.act_params)
        if self.top_scale is not None:
            top = np.float32(self.top_scale)
            nonnegative, high = bounds_after(self.act, self.act_params)
            below = None
            if high is not None and top > 0:
                with np.errstate(over="ignore"):  # an open clip (3e38) times the scale: no bound
                    limit = np.float32(high) * top  # rounding is monotone
                below = float(limit) if np.isfinite(limit) else None
            out = float2int8(b, b.fmul(out, splat(b, ir.Constant(F32, float(top)), lanes)),
                             nonnegative=nonnegative and top > 0, below=below, to=int_type)
        return out


def _global(module: ir.Module, name: str, data: np.ndarray) -> ir.GlobalVariable:
    from ncnnc.backends.llvm.irutil import add_constant

    if name in module.globals:
        return module.globals[name]
    return add_constant(module, name, data)


def pad_channels(values: np.ndarray, group: int, out_g: int, blocks: int, lanes: int) -> np.ndarray:
    """``(group * out_g,)`` values -> ``(group * blocks * lanes,)`` with zeros in the padding lanes."""
    v = np.zeros((group, blocks * lanes), values.dtype)
    v[:, :out_g] = values.reshape(group, out_g)
    return v.ravel()


def _epilogue(layer: Layer, g: ConvGeometry, int8: bool, blocks: int, lanes: int, target: Target) -> Epilogue:
    """The layer's dequantize/requantize constants, padded to ``blocks`` of ``lanes``: the dequantization
    scales as ncnn computes them on ``target``'s CPU family (:mod:`~ncnnc.backends.numpy.cpu_family`)."""
    p = layer.params
    act, act_params = p["activation_type"], p["activation_params"]
    if act not in SUPPORTED_ACTIVATIONS:
        raise Unsupported(f"fused activation type {act}")
    groups, per = (1, g.n) if g.depthwise else (g.group, g.out_g)
    bias = layer.weight("bias").ravel().astype(np.float32) if p["bias_term"] else None
    if not int8:
        return Epilogue(False, None, None if bias is None else pad_channels(bias, groups, per, blocks, lanes),
                        act, act_params, None)
    from ncnnc.backends.numpy.cpu_family import triple_family
    from ncnnc.backends.numpy.int8_ops import conv_dequant

    input_scale = float(layer.weight("bottom_int8_scales").ravel()[0])
    ws = layer.weight("weight_int8_scales").ravel()
    if ws.size == g.group and ws.size != g.n:
        ws = np.repeat(ws, g.out_g)
    scale, fused = conv_dequant(input_scale, ws, triple_family(target.triple), g.depthwise, g.n)
    scale = np.broadcast_to(scale, (g.n,)).astype(np.float32)
    term = p["int8_scale_term"]
    top = float(layer.weight("top_int8_scales").ravel()[0]) if term > 100 else None
    return Epilogue(True, pad_channels(scale, groups, per, blocks, lanes),
                    None if bias is None else pad_channels(bias.astype(np.float32), groups, per, blocks, lanes),
                    act, act_params, top, fused=fused)


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
        store_lanes(b, out, yp, o_index, valid)

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


@dataclass(frozen=True)
class DotScheme:
    """One int8 dot-product instruction as the broadcast-tile template (:func:`_emit_dot`) uses it.

    Every scheme computes ``acc[o] += sum_{i<k} x[c+i] * w[o, c+i]`` for ``lanes`` output channels ``o`` at once,
    with the ``k`` input values of one pixel broadcast as one 32-bit word to every lane; weights are packed
    as ``[group][block][ky][kx][cin/k][lanes][k]`` (int16 when ``wide``).
    """

    int8_dot: str
    """The target's ``int8_dot`` option that asks for it."""
    feature: str
    """The LLVM feature the target's feature string must enable (else LLVM would abort on the intrinsic)."""
    lanes: int
    """int32 accumulator lanes (output channels of one block)."""
    k: int
    """Input channels one instruction reduces into each lane."""
    wide: bool
    """Input (prepared) and weights (packed) as int16, products exact in ``vpmaddwd``."""
    unsigned: bool
    """Input as ``u8 = q + 128``; accumulators start at ``-128 * sum(w)`` to undo the shift exactly."""
    max_blocks: int
    """Output-channel blocks of one register tile."""
    accumulators: int
    """Accumulator registers a tile keeps live (pixels = accumulators // blocks)."""
    instruction: str
    """The instruction its inner loop is made of (what ``--emit-asm`` shows)."""

    def weight_type(self) -> ir.VectorType:
        """One packed weight vector: ``lanes x k`` int8 (int16 when ``wide``)."""
        return vec(I16 if self.wide else I8, self.lanes * self.k)

    def dot(self, b: ir.IRBuilder, acc: ir.Value, word: ir.Value, w: ir.Value) -> ir.Value:
        """``acc + dot(broadcast word, w)`` per lane (``word``: ``<lanes x i32>``, each the ``k`` inputs)."""
        acc_ty = acc.type
        if self.int8_dot == "avx512vnni":  # u8 x s8, 4 per lane, added to acc
            fn = intrinsic(b.module, "llvm.x86.avx512.vpdpbusd.512", acc_ty, [acc_ty] * 3)
            return b.call(fn, [acc, word, b.bitcast(w, acc_ty)])
        if self.int8_dot == "avx2":  # s16 x s16, 2 per lane: exact (|x w| <= 2 * 127 * 128 < 2**31)
            v16 = vec(I16, 16)
            fn = intrinsic(b.module, "llvm.x86.avx2.pmadd.wd", acc_ty, [v16, v16])
            return b.add(acc, b.call(fn, [b.bitcast(word, v16), w]))
        if self.int8_dot == "sdot":  # s8 x s8, 4 per lane, added to acc
            v16 = vec(I8, 16)
            fn = intrinsic(b.module, "llvm.aarch64.neon.sdot.v4i32.v16i8", acc_ty, [acc_ty, v16, v16])
            return b.call(fn, [acc, w, b.bitcast(word, v16)])
        raise AssertionError(self.int8_dot)


DOT_SCHEMES = {
    "avx512vnni": DotScheme("avx512vnni", "avx512vnni", 16, 4, False, True, 4, 24, "vpdpbusd"),
    "avx2": DotScheme("avx2", "avx2", 8, 2, True, False, 2, 12, "vpmaddwd"),
    "sdot": DotScheme("sdot", "dotprod", 4, 4, False, False, 4, 24, "sdot"),
}
"""The broadcast-tile int8 schemes by ``int8_dot``.  Register tiles: AVX-512 (32 zmm) 4 blocks of 16 channels x
6 pixels; AVX2 (16 ymm) 2 blocks of 8 channels x 6 pixels (12 accumulators, 2 weights, the broadcast and a
product: more accumulators spill, 4.5x slower); aarch64 (32 q registers) 4 blocks of 4 channels x 6 pixels."""

SMMLA_K = 8
"""Input channels one ``smmla`` reduces (a 2x8 by 8x2 int8 product)."""

SMMLA_BLOCKS = 4
"""Blocks of 4 output channels (2 ``smmla`` channel pairs each) in an i8mm register tile."""

SMMLA_ACCUMULATORS = 16
"""``smmla`` accumulators (2x2 int32 each) an i8mm tile keeps live: 4 blocks x 2 pixel pairs, with 8 weight and
2 input registers (24 accumulators spill)."""


def _features(target) -> set[str]:
    return {f[1:] for f in str(getattr(target, "features", "") or "").split(",") if f.startswith("+")}


def dot_strategy(target, g: ConvGeometry) -> str:
    """The int8 general-convolution strategy for ``g`` on ``target``: ``smmla``, one of :data:`DOT_SCHEMES`, or
    ``generic``.

    A strategy applies when the target asks for it (``int8_dot``) *and* its feature string enables the
    instruction's feature (a feature only implied by the CPU name is not trusted: LLVM aborts the whole process
    on an intrinsic the target lacks), and every group's input channels start on a ``k``-channel boundary.
    i8mm targets without the boundary fall back to ``sdot`` when they also have dotprod."""
    want, feats = target.options.get("int8_dot"), _features(target)
    if want == "smmla" and "i8mm" in feats:
        if g.group == 1 or g.cin_g % SMMLA_K == 0:
            return "smmla"
        want = "sdot"
    scheme = DOT_SCHEMES.get(want)
    if scheme is not None and scheme.feature in feats and (g.group == 1 or g.cin_g % scheme.k == 0):
        return want
    return "generic"


def use_vnni(target, g: ConvGeometry) -> bool:
    """The AVX-512 VNNI kernel applies (see :func:`dot_strategy`)."""
    return dot_strategy(target, g) == "avx512vnni"


def pack_dot(weight: np.ndarray, g: ConvGeometry, cp: int, lanes: int, k: int, dtype,
             unsigned: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(n, cin_g, kh, kw)`` int8 -> ``(group, blocks, kh, kw, cin/k, lanes, k)`` of ``dtype`` (zero-padded
    output lanes and input channels; ``cp``: the prepared input's channels), and for ``unsigned`` input the
    per-output-channel ``128 * sum(w)`` that undoes the ``u8 = q + 128`` shift, as ``(group, blocks * lanes)``
    int32."""
    blocks = -(-g.out_g // lanes)
    cin_p = cp if g.group == 1 else g.cin_g  # group 1 reads the channel padding too (zero weights there)
    w = weight.reshape(g.group, g.out_g, g.cin_g, g.kh, g.kw).astype(np.int32)
    full = np.zeros((g.group, blocks * lanes, cin_p, g.kh, g.kw), np.int32)
    full[:, :g.out_g, :g.cin_g] = w
    comp = (128 * full.sum(axis=(2, 3, 4))).astype(np.int32).reshape(g.group, -1) if unsigned else None
    packed = full.reshape(g.group, blocks, lanes, cin_p // k, k, g.kh, g.kw).transpose(0, 1, 5, 6, 3, 2, 4)
    return np.ascontiguousarray(packed.astype(dtype)), comp


def pack_vnni(weight: np.ndarray, g: ConvGeometry, cp: int) -> tuple[np.ndarray, np.ndarray]:
    """The VNNI packing: ``(group, blocks, kh, kw, cin4, 16, 4)`` bytes and ``128 * sum(w)`` per channel."""
    return pack_dot(weight, g, cp, 16, 4, np.int8, True)  # type: ignore[return-value]


def _tiles(b: ir.IRBuilder, g: ConvGeometry, split: tuple[ir.Value, ir.Value], blocks: int, max_blocks: int,
           max_acc: int, pixel_step: int, tile) -> None:
    """The loop nest shared by the register-tiled kernels: this thread's rows (``split``), groups, runs of up to
    ``max_blocks`` channel blocks, runs of pixels of one row (a multiple of ``pixel_step`` fitting ``max_acc``
    accumulators).

    Calls ``tile(oy, ox0, grp, blk0, nb, npx, last)`` with ``last`` true when the run holds the group's last
    (maybe partial) block."""
    nb_full = min(blocks, max_blocks)
    full_groups, rem_blocks = divmod(blocks, nb_full)
    first, last_row = split
    with for_range(b, first, last_row, name="oy") as oy:
        for grp in range(g.group):
            def blocks_of(blk0: ir.Value, nb: int, last: bool, grp: int = grp) -> None:
                npx = max(pixel_step, max_acc // nb // pixel_step * pixel_step)
                npx = min(npx, -(-g.ow // pixel_step) * pixel_step)
                rf, rr = divmod(g.ow, npx)
                if rf:
                    with for_range(b, 0, rf, name="oxt") as t:
                        tile(oy, b.mul(t, i64(npx)), grp, blk0, nb, npx, last)
                if rr:
                    tile(oy, i64(rf * npx), grp, blk0, nb, rr, last)

            last_in_full = rem_blocks == 0 and full_groups > 0
            n_plain = full_groups - 1 if last_in_full else full_groups
            if n_plain:
                with for_range(b, 0, n_plain, name="bg") as bg:
                    blocks_of(b.mul(bg, i64(nb_full)), nb_full, False)
            if last_in_full:
                blocks_of(i64(n_plain * nb_full), nb_full, True)
            if rem_blocks:
                blocks_of(i64(full_groups * nb_full), rem_blocks, True)


def _input_offsets(b: ir.IRBuilder, g: ConvGeometry, oy: ir.Value, ox0: ir.Value, pixels, wp: int,
                   cp: int) -> list[ir.Value]:
    """Element offset, in the prepared input (``wp`` pixels a row, ``cp`` channels a pixel), of the top-left tap
    of each output pixel ``ox0 + p`` of row ``oy``, for ``p`` in ``pixels``."""
    row = b.mul(b.mul(oy, i64(g.sh)), i64(wp))
    return [b.mul(b.add(row, b.mul(b.add(ox0, i64(p)), i64(g.sw))), i64(cp)) for p in pixels]


def _tap_loops(b: ir.IRBuilder, g: ConvGeometry, cp: int, wp: int, grp: int, body) -> None:
    """Runtime loops over the kernel taps (kept rolled: unrolling them multiplies a tiled kernel's code, and
    codegen time, by ``kh * kw`` for no measurable speed); calls ``body(tap, off)`` with the tap index and the
    input element offset of the tap for this group, both ``i64``."""
    with for_range(b, 0, g.kh, name="ky") as ky, for_range(b, 0, g.kw, name="kx") as kx:
        tap = b.add(b.mul(ky, i64(g.kw)), kx)
        off = b.add(b.mul(b.add(b.mul(ky, i64(g.dh * wp)), b.mul(kx, i64(g.dw))), i64(cp)), i64(grp * g.cin_g))
        body(tap, off)


def _tile_epilogue(b: ir.IRBuilder, ctx: KernelContext, g: ConvGeometry, epi: Epilogue, accs: list[list[ir.Value]],
                   yp: ir.Value, oy: ir.Value, ox0: ir.Value, grp: int, blk0: ir.Value, blocks: int,
                   valid_last: int) -> None:
    """Apply the epilogue to a register tile's accumulators (``accs[pixel][block]``, ``<lanes x i32>``) and store
    the outputs: the tile goes through a stack array and a runtime loop over its pixels, so the epilogue's code is
    emitted once per block instead of once per accumulator."""
    npx, nb, acc_ty = len(accs), len(accs[0]), accs[0][0].type
    lanes = acc_ty.count
    with b.goto_block(b.function.entry_basic_block):
        b.position_before(b.function.entry_basic_block.instructions[0])
        arr = b.alloca(acc_ty, size=i64(npx * nb), name="tile")
        arr.align = 64
    for p, row in enumerate(accs):
        for j, acc in enumerate(row):
            b.store(acc, b.gep(arr, [i64(p * nb + j)], inbounds=True, source_etype=acc_ty))
    with for_range(b, 0, npx, name="px") as p:
        pix_out = b.mul(b.add(b.mul(oy, i64(g.ow)), b.add(ox0, p)), i64(ctx.step.outputs[0].stride))
        for j in range(nb):
            acc = b.load(b.gep(arr, [b.add(b.mul(p, i64(nb)), i64(j))], inbounds=True, source_etype=acc_ty), typ=acc_ty)
            blk = b.add(blk0, i64(j))
            out = epi.apply(b, ctx.module, ctx.name, acc, b.mul(b.add(i64(grp * blocks), blk), i64(lanes)))
            o_index = b.add(pix_out, b.add(i64(grp * g.out_g), b.mul(blk, i64(lanes))))
            store_lanes(b, out, yp, o_index, valid_last if j == nb - 1 else lanes)


def _emit_dot(ctx: KernelContext, g: ConvGeometry, packed: tuple[np.ndarray, np.ndarray | None], epi: Epilogue,
              lanes: int, int8: bool, scheme: DotScheme) -> ir.Function:
    """int8 general convolution with one dot-product instruction per ``lanes`` output channels x ``k`` input
    channels (``vpdpbusd``, ``vpmaddwd``, ``sdot``: see :class:`DotScheme`).

    Register tile: ``nb`` blocks of ``lanes`` output channels x ``npx`` output pixels of one row; for each tap
    and ``k`` input channels, ``nb`` weight vectors are loaded once and each feeds ``npx`` instructions whose
    other operand is one pixel's ``k`` inputs broadcast as a 32-bit word.  Sums are exact int32 (for u8 input
    the accumulators start at ``-128 * sum(w)``, which undoes the shift exactly).
    """
    wpacked, comp = packed
    fn, b = ctx.function()
    src = ctx.step.inputs[0]
    xp, yp = fn.args[0], fn.args[1]
    lanes, k = scheme.lanes, scheme.k
    xel = I16 if scheme.wide else I8
    cp = src.chw[0] // (2 if scheme.wide else 1)  # an int16 input is an i8 view of twice the channels
    wp = src.chw[2]
    steps = (cp if g.group == 1 else g.cin_g) // k
    blocks = -(-g.out_g // lanes)
    taps = g.kh * g.kw
    weights = _global(ctx.module, f"{ctx.name}.w", wpacked)
    acc_ty = vec(I32, lanes)
    w_ty = scheme.weight_type()
    w_bytes = lanes * k * (2 if scheme.wide else 1)  # every weight vector starts at a multiple of its size
    negcomp = None if comp is None else _global(ctx.module, f"{ctx.name}.comp", (-comp).astype(np.int32).ravel())
    tail_valid = g.out_g - (blocks - 1) * lanes

    def tile(oy: ir.Value, ox0: ir.Value, grp: int, blk0: ir.Value, nb: int, npx: int, last: bool) -> None:
        slots = [[entry_alloca(b, acc_ty, "acc") for _ in range(nb)] for _ in range(npx)]
        for j in range(nb):
            init = (ir.Constant(acc_ty, None) if negcomp is None else
                    load(b, negcomp, acc_ty, b.mul(b.add(i64(grp * blocks), b.add(blk0, i64(j))), i64(lanes))))
            for row in slots:
                b.store(init, row[j])
        base_in = _input_offsets(b, g, oy, ox0, range(npx), wp, cp)
        wtap = b.mul(b.add(i64(grp * blocks), blk0), i64(taps))

        def tap_body(tap: ir.Value, off: ir.Value) -> None:
            with for_range(b, 0, steps, name="ck") as ck:
                wvs = []
                for j in range(nb):
                    wrow = b.add(b.mul(b.add(wtap, b.add(tap, i64(j * taps))), i64(steps)), ck)
                    wvs.append(load(b, weights, w_ty, b.mul(wrow, i64(lanes * k)), align=w_bytes))
                for p in range(npx):
                    at = b.add(b.add(base_in[p], off), b.mul(ck, i64(k)))
                    word = b.load(b.gep(xp, [at], inbounds=True, source_etype=xel), typ=I32, align=1)
                    xs = splat(b, word, lanes)
                    for j in range(nb):
                        b.store(scheme.dot(b, b.load(slots[p][j], typ=acc_ty), xs, wvs[j]), slots[p][j])

        _tap_loops(b, g, cp, wp, grp, tap_body)
        _tile_epilogue(b, ctx, g, epi, [[b.load(slot, typ=acc_ty) for slot in row] for row in slots], yp, oy, ox0,
                       grp, blk0, blocks, tail_valid if last else lanes)

    _tiles(b, g, ctx.split(b, fn, g.oh), blocks, scheme.max_blocks, scheme.accumulators, 1, tile)
    b.ret_void()
    return fn


def pack_smmla(weight: np.ndarray, g: ConvGeometry, cp: int) -> np.ndarray:
    """``(n, cin_g, kh, kw)`` int8 -> ``(group, blocks, kh, kw, cin/8, 4, 8)`` bytes: per block of 4 output
    channels, tap and 8 input channels, two ``smmla`` right operands (channels 0-1, then 2-3, 8 bytes each)."""
    packed, _ = pack_dot(weight, g, cp, 4, SMMLA_K, np.int8, False)
    return packed


def _emit_smmla(ctx: KernelContext, g: ConvGeometry, wpacked: np.ndarray, epi: Epilogue, lanes: int,
                int8: bool) -> ir.Function:
    """int8 general convolution with ``smmla`` (armv8.6 i8mm): ``acc(2x2) += X(2x8) W(2x8)^T`` per instruction,
    the rows of ``X`` two output pixels' 8 input channels, the rows of ``W`` two output channels' weights.

    Register tile: ``nb`` blocks of 4 output channels (2 channel pairs) x ``npx`` pixels of one row (pairs; an
    odd last pixel is paired with itself and stored once).  An accumulator holds ``[p0 o0, p0 o1, p1 o0, p1 o1]``;
    two of them (channel pairs 0-1 and 2-3 of a block) are shuffled into each pixel's 4 output channels for the
    epilogue.  Sums are exact int32.
    """
    fn, b = ctx.function()
    src = ctx.step.inputs[0]
    xp, yp = fn.args[0], fn.args[1]
    cp, wp = src.chw[0], src.chw[2]
    steps = (cp if g.group == 1 else g.cin_g) // SMMLA_K
    blocks = -(-g.out_g // 4)
    taps = g.kh * g.kw
    weights = _global(ctx.module, f"{ctx.name}.w", wpacked)
    v4, v16, v2 = vec(I32, 4), vec(I8, 16), vec(ir.IntType(64), 2)
    mmla = intrinsic(ctx.module, "llvm.aarch64.neon.smmla.v4i32.v16i8", v4, [v4, v16, v16])
    tail_valid = g.out_g - (blocks - 1) * 4

    def tile(oy: ir.Value, ox0: ir.Value, grp: int, blk0: ir.Value, nb: int, npx: int, last: bool) -> None:
        pairs = -(-npx // 2)
        slots = [[entry_alloca(b, v4, "acc") for _ in range(2 * nb)] for _ in range(pairs)]
        for row in slots:
            for slot in row:
                b.store(ir.Constant(v4, None), slot)
        base_in = _input_offsets(b, g, oy, ox0, [min(p, npx - 1) for p in range(2 * pairs)], wp, cp)
        wtap = b.mul(b.add(i64(grp * blocks), blk0), i64(taps))

        def tap_body(tap: ir.Value, off: ir.Value) -> None:
            with for_range(b, 0, steps, name="c8") as c8:
                wvs = []
                for j in range(nb):
                    wrow = b.add(b.mul(b.add(wtap, b.add(tap, i64(j * taps))), i64(steps)), c8)
                    for half in range(2):
                        wvs.append(load(b, weights, v16, b.add(b.mul(wrow, i64(32)), i64(16 * half)), align=16))
                for q in range(pairs):
                    xv = ir.Constant(v2, None)
                    for half in range(2):
                        at = b.add(b.add(base_in[2 * q + half], off), b.mul(c8, i64(SMMLA_K)))
                        word = b.load(b.gep(xp, [at], inbounds=True, source_etype=I8), typ=ir.IntType(64), align=1)
                        xv = b.insert_element(xv, word, i32(half))
                    xv = b.bitcast(xv, v16)
                    for j in range(2 * nb):
                        b.store(b.call(mmla, [b.load(slots[q][j], typ=v4), xv, wvs[j]]), slots[q][j])

        _tap_loops(b, g, cp, wp, grp, tap_body)
        accs = []
        for p in range(npx):  # [p0 o0, p0 o1, p1 o0, p1 o1] x 2 channel pairs -> one pixel's 4 channels
            q, half = divmod(p, 2)
            mask = ir.Constant(vec(I32, 4), [2 * half, 2 * half + 1, 4 + 2 * half, 5 + 2 * half])
            accs.append([b.shuffle_vector(b.load(slots[q][2 * j], typ=v4), b.load(slots[q][2 * j + 1], typ=v4), mask)
                         for j in range(nb)])
        _tile_epilogue(b, ctx, g, epi, accs, yp, oy, ox0, grp, blk0, blocks, tail_valid if last else 4)

    _tiles(b, g, ctx.split(b, fn, g.oh), blocks, SMMLA_BLOCKS, SMMLA_ACCUMULATORS, 2, tile)
    b.ret_void()
    return fn


def _emit_depthwise(ctx: KernelContext, g: ConvGeometry, wpacked: np.ndarray, epi: Epilogue, lanes: int,
                    int8: bool) -> ir.Function:
    """fp32 channel-vectorised depthwise kernel; products added in tap order, as the simulation does."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    src, dst = ctx.step.inputs[0], ctx.step.outputs[0]
    xp, yp = fn.args
    cp, wp = src.chw[0], src.chw[2]
    weights = _global(ctx.module, f"{ctx.name}.w", wpacked)
    elem = F32
    full, tail = divmod(g.n, lanes)

    def block(pix_in: ir.Value, pix_out: ir.Value, blk: ir.Value, valid: int) -> None:
        acc = None
        for ky in range(g.kh):
            for kx in range(g.kw):
                at = b.add(pix_in, b.add(i64((ky * g.dh * wp + kx * g.dw) * cp), b.mul(blk, i64(lanes))))
                xv = load(b, xp, vec(elem, lanes), at)
                wv = load(b, weights, vec(elem, lanes), b.add(i64((ky * g.kw + kx) * cp), b.mul(blk, i64(lanes))))
                prod = b.fmul(xv, wv)
                acc = prod if acc is None else b.fadd(acc, prod)
        out = epi.apply(b, ctx.module, ctx.name, acc, b.mul(blk, i64(lanes)))
        store_lanes(b, out, yp, b.add(pix_out, b.mul(blk, i64(lanes))), valid)

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
    tiled = False
    scale = float(layer.weight("bottom_int8_scales").ravel()[0]) if int8 else 1.0
    if g.depthwise and int8:  # 16-bit products, taps in pairs (kernels/depthwise.py)
        from ncnnc.backends.llvm.kernels import depthwise

        pair_dot = depthwise.PAIR_DOTS.get(want := lw.target.options.get("int8_dot"))
        if pair_dot is not None and DOT_SCHEMES[want].feature not in _features(lw.target):
            pair_dot = None
        dw_lanes = pair_dot.width if pair_dot else max(lw.target.options.get("vector_bits", 128) // 16, 8)
        epi = _epilogue(layer, g, int8, -(-g.n // dw_lanes), dw_lanes, lw.target)
        if epi.top_scale is None and layer.outputs[0] in lw.write_scales:
            epi = replace(epi, top_scale=lw.write_scales[layer.outputs[0]])
        prepared = prepare_int8(lw, src, scale, g.pads, dw_lanes)
        out = lw.output(layer, 0, "i8" if epi.top_scale is not None else "f32")
        if pair_dot is not None:
            def emit_dw(ctx: KernelContext) -> ir.Function:
                return depthwise.emit_depthwise_pairs(ctx, g, weight, epi, pair_dot)
        else:
            packed_dw = depthwise.pack_depthwise_i16(weight, g.kh, g.kw, g.n, prepared.chw[0])

            def emit_dw(ctx: KernelContext) -> ir.Function:
                return depthwise.emit_depthwise_i16(ctx, g, packed_dw, epi, dw_lanes)
        lw.add("dwconv", [prepared], [out], emit_dw, macs=g.macs, parallel=True)
        return
    if g.depthwise:  # fp32 (int8 depthwise went to kernels/depthwise.py above)
        blocks = -(-g.n // lanes)
        epi = _epilogue(layer, g, int8, blocks, lanes, lw.target)
        prepared = prepare_f32(lw, src, g.pads, lanes, layer.p("pad_value"))
        wk = np.zeros((g.kh * g.kw, blocks * lanes), np.float32)
        wk[:, :g.n] = weight.reshape(g.n, g.kh * g.kw).T
        emitter, packed = _emit_depthwise, wk
    elif int8 and (strategy := dot_strategy(lw.target, g)) != "generic":
        tiled = True  # the register-tiled kernels split their rows among threads
        if strategy == "smmla":
            lanes = 4
            prepared = prepare_int8(lw, src, scale, g.pads, channel_multiple=SMMLA_K)
            packed = pack_smmla(weight, g, prepared.chw[0])
            emitter = _emit_smmla
        else:
            scheme = DOT_SCHEMES[strategy]
            lanes = scheme.lanes
            prepared = prepare_int8(lw, src, scale, g.pads, channel_multiple=scheme.k, unsigned=scheme.unsigned,
                                    wide=scheme.wide)
            cp = prepared.chw[0] // (2 if scheme.wide else 1)
            packed = pack_dot(weight, g, cp, lanes, scheme.k, np.int16 if scheme.wide else np.int8, scheme.unsigned)
            emitter = functools.partial(_emit_dot, scheme=scheme)
        epi = _epilogue(layer, g, int8, -(-g.out_g // lanes), lanes, lw.target)
    else:
        blocks = -(-g.out_g // lanes)
        epi = _epilogue(layer, g, int8, blocks, lanes, lw.target)
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

    lw.add("dwconv" if g.depthwise else "conv", [prepared], [out], emit, macs=g.macs, parallel=tiled)


for _type in ("Convolution", "ConvolutionDepthWise"):
    register_lowering(_type)(lambda lw, layer: lower_conv(lw, layer, False))
    register_lowering(_type, INT8)(lambda lw, layer: lower_conv(lw, layer, True))

