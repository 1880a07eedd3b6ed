"""InnerProduct, fp32 and int8, as a matrix-vector product vectorized over output neurons.

ncnn flattens the input in its own ``c, h, w`` order; this backend stores a 3-D blob channels-last
(element ``(ch, y, x)`` at ``(y * w + x) * pixel_stride + ch``).  Instead of moving the data, the
weight columns are permuted at compile time into the order the kernel walks memory (pixel by pixel,
channels inside), so any ``pixel_stride`` is read in place.  Weights are packed
``[block][K][lanes]``: for each block of ``lanes`` output neurons (``lanes`` = the target's vector
bits / 32), ``acc[lanes] += x[k] * w[block, k, 0:lanes]`` with ``x[k]`` broadcast.

- int8 (``8=2``), as ``backends/numpy/int8_ops.py`` ``Int8InnerProduct``: a float input is quantized
  once with ``bottom_int8_scales`` (``float2int8(x * scale)``, :func:`.quant.prepare_int8`); an int8
  input is read as it is.  Sums are exact int32 (the simulation's are exact too; a layer with so many
  inputs that int32 could overflow is refused), then :func:`.arith.dequantize` with
  ``scale_in = dequant_scales(input_scale, weight_scales)``: ``fma(float32(sum), scale_in, bias)``,
  one rounding, then the fused activation (``9=``/``10=``).  **Bit-identical** (atol=0) to the simulation.
- fp32: a 1-D/2-D/3-D input flattened, or a 2-D input whose rows have ``num_input`` values processed
  row by row (``(h, num_input) -> (h, num_output)``), as the simulation.  The products are added in
  memory order, one float32 accumulator per neuron, then the bias, then the activation.  numpy's
  BLAS sums in another (blocked) order, so fp32 results differ by rounding only: the tests allow
  ``atol = 1e-5 * max|x| * max_n sum_k |w_nk|`` per layer (measured on 1-D/2-D/3-D inputs of 7 to
  3136 values: at most ``1.8e-7 * sum_k |x_k w_nk|``, about 1.5 float32 ulps of the sum's magnitude,
  well inside the allowed error).  A fused sigmoid adds ``expf``'s ulp (see :mod:`.arith`), in int8 too.

Refused: Mish (``9=5``) and unknown activations, an input whose size does not fit the weights, int8
on a row-by-row 2-D input (the simulation flattens it and would disagree on the output shape), int8
with more than 131071 inputs (int32 overflow possible).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from ncnnc.backends.llvm.irutil import (
    DTYPES,
    F32,
    I8,
    I32,
    add_constant,
    entry_alloca,
    for_range,
    i64,
    load,
    new_function,
    splat,
    store_lanes,
    vec,
)
from ncnnc.backends.llvm.kernels.arith import SUPPORTED_ACTIVATIONS
from ncnnc.backends.llvm.kernels.conv import Epilogue, pad_channels
from ncnnc.backends.llvm.kernels.quant import prepare_int8
from ncnnc.backends.llvm.lower import Lowerer, Unsupported, register_lowering
from ncnnc.backends.llvm.program import KernelContext, View
from ncnnc.backends.numpy.registry import INT8
from ncnnc.core.ir import Layer

MAX_INT8_INPUTS = 2**31 // (128 * 128) - 1
"""Most inputs an int8 layer may have so that its int32 sums cannot overflow."""


def _lanes(lw: Lowerer) -> int:
    bits = int(lw.target.options.get("vector_bits") or 128)
    return max(bits // 32, 4)


def memory_order_columns(src: View, k: int) -> np.ndarray:
    """For each element of ``src`` in the order the kernel reads it (pixel by pixel, channels inside),
    its index in ncnn's flattened ``c, h, w`` order (``k`` elements in all)."""
    c, h, w = src.chw
    hw = h * w
    if src.dims < 3 or c == 1 or hw == 1:
        return np.arange(k)
    ch = np.arange(c)[None, :]
    p = np.arange(hw)[:, None]
    return (ch * hw + p).ravel()


def pack_weights(weight: np.ndarray, columns: np.ndarray, lanes: int, dtype) -> np.ndarray:
    """``(n, K)`` weights -> ``(blocks, K, lanes)`` with the columns in ``columns`` order, zero lanes past ``n``."""
    n, k = weight.shape
    blocks = -(-n // lanes)
    padded = np.zeros((blocks * lanes, k), dtype)
    padded[:n] = weight[:, columns]
    return np.ascontiguousarray(padded.reshape(blocks, lanes, k).transpose(0, 2, 1))


def _emit(ctx: KernelContext, packed: np.ndarray, epi: Epilogue, n: int, k: int, rows: int, lanes: int,
          int8: bool) -> ir.Function:
    """``rows`` matrix-vector products of ``k`` inputs each; the input is read in the packed column order."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    src = ctx.step.inputs[0]
    xp, yp = fn.args
    weights = add_constant(ctx.module, f"{ctx.name}.w", packed)
    elem = I8 if int8 else F32
    src_elem = DTYPES[src.dtype]
    acc_ty = vec(I32 if int8 else F32, lanes)
    c, h, w = src.chw
    hw = h * w
    walk_pixels = rows == 1 and src.dims == 3 and hw > 1 and src.pixel_stride != c
    full, tail = divmod(n, lanes)

    def term(slot: ir.Value, x_index: ir.Value, w_index: ir.Value) -> None:
        xv = load(b, xp, src_elem, x_index)
        wv = load(b, weights, vec(elem, lanes), b.mul(w_index, i64(lanes)), align=4)
        acc = b.load(slot, typ=acc_ty)
        if int8:
            acc = b.add(acc, b.mul(splat(b, b.sext(xv, I32), lanes), b.sext(wv, acc_ty)))
        else:
            acc = b.fadd(acc, b.fmul(splat(b, xv, lanes), wv))
        b.store(acc, slot)

    def block(row: ir.Value, blk: ir.Value, valid: int) -> None:
        slot = entry_alloca(b, acc_ty, "acc")
        b.store(ir.Constant(acc_ty, None), slot)
        wbase = b.mul(blk, i64(k))
        if walk_pixels:
            with for_range(b, 0, hw, name="p") as p, for_range(b, 0, c, name="c") as ch:
                term(slot, b.add(b.mul(p, i64(src.pixel_stride)), ch), b.add(wbase, b.add(b.mul(p, i64(c)), ch)))
        else:
            xbase = b.mul(row, i64(k))
            with for_range(b, 0, k, name="k") as kk:
                term(slot, b.add(xbase, kk), b.add(wbase, kk))
        out = epi.apply(b, ctx.module, ctx.name, b.load(slot, typ=acc_ty), b.mul(blk, i64(lanes)))
        store_lanes(b, out, yp, b.add(b.mul(row, i64(n)), b.mul(blk, i64(lanes))), valid)

    with for_range(b, 0, rows, name="row") as row:
        if full:
            with for_range(b, 0, full, name="blk") as blk:
                block(row, blk, lanes)
        if tail:
            block(row, i64(full), tail)
    b.ret_void()
    return fn


def lower_innerproduct(lw: Lowerer, layer: Layer, int8: bool) -> None:
    """Lower one InnerProduct (fp32 or int8)."""
    p = layer.params
    n = int(p["num_output"])
    src = lw.input(layer, 0, None if int8 else "f32")  # fp32 layers read an int8 blob converted
    weight = np.asarray(layer.weight("weight"))
    if n <= 0 or weight.size % n:
        raise Unsupported("weights that do not fit num_output")
    k = weight.size // n
    weight = weight.reshape(n, k)
    act, act_params = p["activation_type"], p["activation_params"]
    if act not in SUPPORTED_ACTIVATIONS:
        raise Unsupported(f"fused activation type {act}")
    out_shape = lw.shape(layer.outputs[0])
    rows = 1
    if len(out_shape) == 2:
        if int8:
            raise Unsupported("int8 row by row on a 2-D input")
        if src.dims != 2 or src.shape[1] != k:
            raise Unsupported(f"a {src.shape} input for {k} inputs per row")
        rows = src.shape[0]
    elif src.size != k:
        raise Unsupported(f"an input of {src.size} values (the weights expect {k})")
    if src.dtype not in ("f32", "i8"):
        raise Unsupported(f"an input of dtype {src.dtype}")
    lanes = _lanes(lw)
    blocks = -(-n // lanes)
    bias = np.asarray(layer.weight("bias"), np.float32).ravel() if p["bias_term"] else None
    if int8:
        from ncnnc.backends.numpy.int8_ops import dequant_scales

        if k > MAX_INT8_INPUTS:
            raise Unsupported(f"int8 with {k} inputs (int32 sums could overflow)")
        input_scale = float(np.asarray(layer.weight("bottom_int8_scales")).ravel()[0])
        ws = np.broadcast_to(np.asarray(layer.weight("weight_int8_scales"), np.float32).ravel(), (n,))
        scale = dequant_scales(input_scale, ws).astype(np.float32)
        bias32 = None if bias is None else pad_channels(bias.astype(np.float32), 1, n, blocks, lanes)
        epi = Epilogue(True, pad_channels(scale, 1, n, blocks, lanes), bias32, act, act_params, None)
        if src.dtype == "f32":
            src = prepare_int8(lw, src, input_scale, (0, 0, 0, 0))  # dense (c, h, w), channels inside
        columns = memory_order_columns(src, k)
        packed = pack_weights(np.rint(weight).astype(np.int8), columns, lanes, np.int8)
    else:
        epi = Epilogue(False, None, None if bias is None else pad_channels(bias, 1, n, blocks, lanes), act, act_params,
                       None)
        columns = memory_order_columns(src, k) if rows == 1 else np.arange(k)
        packed = pack_weights(weight.astype(np.float32), columns, lanes, np.float32)
    out = lw.output(layer, 0, "f32")

    def emit(ctx: KernelContext) -> ir.Function:
        return _emit(ctx, packed, epi, n, k, rows, lanes, int8)

    lw.add("innerproduct", [src], [out], emit, macs=n * k * rows)


register_lowering("InnerProduct")(lambda lw, layer: lower_innerproduct(lw, layer, False))
register_lowering("InnerProduct", INT8)(lambda lw, layer: lower_innerproduct(lw, layer, True))
