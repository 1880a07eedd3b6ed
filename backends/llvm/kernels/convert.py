"""Layout and dtype conversions: the model's channel-major float inputs/outputs to and from the
channels-last buffers inside, int8 -> float, and plain view-to-view copies."""

from __future__ import annotations

from llvmlite import ir

from ncnnc.backends.llvm.irutil import DTYPES, F32, for_range, i64, load, new_function, store
from ncnnc.backends.llvm.program import KernelContext, View


def _convert_value(b: ir.IRBuilder, value: ir.Value, src: str, dst: str) -> ir.Value:
    if src == dst:
        return value
    if dst == "f32" and src in ("i8", "i32"):
        return b.sitofp(value, F32)
    raise ValueError(f"no conversion {src} -> {dst}")


def copy_elements(b: ir.IRBuilder, src_ptr: ir.Value, src: View, dst_ptr: ir.Value, dst: View,
                  src_chw: bool = False, dst_chw: bool = False) -> None:
    """Copy every element of ``src`` to ``dst`` (same logical shape), converting the dtype.

    ``src_chw``/``dst_chw`` mark a dense channel-major buffer (the model's own inputs/outputs)
    instead of the channels-last layout.
    """
    c, h, w = src.chw
    hw = h * w
    st = DTYPES[src.dtype]
    contiguous = (src_chw or src.dense or hw == 1) and (dst_chw or dst.dense or hw == 1)
    if contiguous and (src_chw == dst_chw or c == 1 or hw == 1):
        with for_range(b, 0, c * hw, name="e") as e:
            store(b, _convert_value(b, load(b, src_ptr, st, e), src.dtype, dst.dtype), dst_ptr, e)
        return
    with for_range(b, 0, hw, name="p") as p, for_range(b, 0, c, name="c") as ch:
        si = b.add(b.mul(ch, i64(hw)), p) if src_chw else b.add(b.mul(p, i64(src.stride)), ch)
        di = b.add(b.mul(ch, i64(hw)), p) if dst_chw else b.add(b.mul(p, i64(dst.stride)), ch)
        store(b, _convert_value(b, load(b, src_ptr, st, si), src.dtype, dst.dtype), dst_ptr, di)


def emit_from_chw(ctx: KernelContext) -> ir.Function:
    """A model input (dense ``c, h, w`` float) into its channels-last view."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    copy_elements(b, fn.args[0], ctx.step.inputs[0], fn.args[1], ctx.step.outputs[0], src_chw=True)
    b.ret_void()
    return fn


def emit_to_chw(ctx: KernelContext) -> ir.Function:
    """A blob (float or int8, channels-last, or a model input as it came) into a model output (dense
    ``c, h, w`` float)."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    src = ctx.step.inputs[0]
    copy_elements(b, fn.args[0], src, fn.args[1], ctx.step.outputs[0], src_chw=src.channel_major, dst_chw=True)
    b.ret_void()
    return fn


def emit_convert(ctx: KernelContext) -> ir.Function:
    """An int8 blob to float32 (same layout rules as any copy)."""
    fn, b = new_function(ctx.module, ctx.name, 2)
    copy_elements(b, fn.args[0], ctx.step.inputs[0], fn.args[1], ctx.step.outputs[0])
    b.ret_void()
    return fn


def emit_copy(ctx: KernelContext) -> ir.Function:
    """A view copied into another view of the same shape and dtype (strides may differ)."""
    return emit_convert(ctx)

