"""ncnn's int8 arithmetic and fused activations as IR on scalars or vectors, operation for operation
what the numpy simulation (``backends/numpy/int8_ops.py``, ``common.activate``) computes.

- ``float2int8(v)``: ``trunc(v + copysign(0.5, v))`` in float32, clamped to [-127, 127];
- ``dequantize(acc, scale, bias)``: ``fma(float32(acc), scale, bias)`` — the int32 sum converted to
  float32, then one fused multiply-add, as ncnn's kernels and the simulation (``core.int8.fma32``) do;
- activations: ReLU ``max(x, 0)`` and clip as ``np.maximum``/``np.minimum`` (NaN propagates), leaky
  ReLU ``x > 0 ? x : x * slope``, sigmoid ``1 / (1 + exp(-x))``, hardswish ``x * clip(x * a + b, 0, 1)``,
  each rounding where numpy rounds (no contraction into fma).  ``exp`` is the C library's ``expf``,
  which may differ from numpy's by an ulp: the one documented tolerance.
"""

from __future__ import annotations

from llvmlite import ir

from ncnnc.backends.llvm.irutil import F32, I8, I32, call_intrinsic, f32, vec


def _const(ty: ir.Type, make, value: float) -> ir.Value:
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [make(value)] * ty.count)
    return make(value)


def fconst(like: ir.Value, value: float) -> ir.Value:
    """A float32 constant (or splat vector) of ``like``'s type."""
    return _const(like.type, f32, value)


def float_type(like: ir.Value, elem: ir.Type) -> ir.Type:
    """``elem``, or a vector of ``elem`` as wide as ``like``."""
    return vec(elem, like.type.count) if isinstance(like.type, ir.VectorType) else elem


def maximum(b: ir.IRBuilder, x: ir.Value, bound: ir.Value) -> ir.Value:
    """``np.maximum(x, bound)``: ``x`` when ``x >= bound`` or ``x`` is NaN."""
    return b.select(b.fcmp_unordered(">=", x, bound), x, bound)


def minimum(b: ir.IRBuilder, x: ir.Value, bound: ir.Value) -> ir.Value:
    """``np.minimum(x, bound)``: ``x`` when ``x <= bound`` or ``x`` is NaN."""
    return b.select(b.fcmp_unordered("<=", x, bound), x, bound)


def float2int8(b: ir.IRBuilder, v: ir.Value, nonnegative: bool = False, below: float | None = None,
               to: ir.Type = I8) -> ir.Value:
    """float32 (vector) -> int8 (vector), ncnn's rounding and saturation: ``trunc(v + copysign(0.5, v))``
    clamped to [-127, 127]; ``to=I32`` gives the same values in int32 lanes (for a kernel that packs them).

    Clamping before the (truncating) conversion gives the same integers as clamping after ``trunc``.
    What the caller knows shortens it, with the same results: ``nonnegative`` (``v >= 0`` or ``-0``, as
    after ReLU: ``+0.5`` replaces ``copysign`` and the lower clamp goes), ``below`` (``v <= below``: the
    upper clamp goes when ``below + 0.5 < 127``).
    """
    half = fconst(v, 0.5) if nonnegative else call_intrinsic(b, "llvm.copysign", [fconst(v, 0.5), v])
    r = b.fadd(v, half)
    if not nonnegative:
        r = maximum(b, r, fconst(v, -127.0))
    if below is None or not float(below) + 0.5 < 127.0:
        r = minimum(b, r, fconst(v, 127.0))
    return b.fptosi(r, float_type(v, to))


def bounds_after(act_type: int, params) -> tuple[bool, float | None]:
    """``(nonnegative, upper bound)`` of a fused activation's output (``None``: unbounded above)."""
    params = list(params or [])
    if act_type == 1:
        return True, None
    if act_type == 3:
        lo = params[0] if params else -3.4028234663852886e38
        hi = params[1] if len(params) > 1 else 3.4028234663852886e38
        return lo >= 0, hi
    return False, None


def exp(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """``expf`` element by element."""
    return call_intrinsic(b, "llvm.exp", [x])


def sigmoid(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """``1 / (1 + exp(-x))`` in float32."""
    one = fconst(x, 1.0)
    return b.fdiv(one, b.fadd(one, exp(b, b.fneg(x))))


def activate(b: ir.IRBuilder, x: ir.Value, act_type: int, params) -> ir.Value:
    """A fused activation (``9=``/``10=`` of Convolution, InnerProduct...): 0 none, 1 ReLU,
    2 leaky ReLU, 3 clip, 4 sigmoid, 6 hardswish.  Mish (5) is refused by the lowering."""
    params = list(params or [])
    if act_type == 0:
        return x
    if act_type == 1:
        return maximum(b, x, fconst(x, 0.0))
    if act_type == 2:
        slope = params[0] if params else 0.0
        return b.select(b.fcmp_ordered(">", x, fconst(x, 0.0)), x, b.fmul(x, fconst(x, slope)))
    if act_type == 3:
        lo = params[0] if params else -3.4028234663852886e38
        hi = params[1] if len(params) > 1 else 3.4028234663852886e38
        return minimum(b, maximum(b, x, fconst(x, lo)), fconst(x, hi))
    if act_type == 4:
        return sigmoid(b, x)
    if act_type == 6:
        alpha = params[0] if params else 0.2
        beta = params[1] if len(params) > 1 else 0.5
        t = b.fadd(b.fmul(x, fconst(x, alpha)), fconst(x, beta))
        return b.fmul(x, minimum(b, maximum(b, t, fconst(x, 0.0)), fconst(x, 1.0)))
    raise ValueError(f"activation type {act_type}")


SUPPORTED_ACTIVATIONS = (0, 1, 2, 3, 4, 6)
"""Fused activation types the kernels can apply."""


def dequantize(b: ir.IRBuilder, acc: ir.Value, scale: ir.Value, bias: ir.Value | None,
               fused: bool = True) -> ir.Value:
    """``fma(float32(acc), scale, bias)``, one rounding (``acc * scale`` without a bias): ``acc`` an i32
    (or float) vector, ``scale``/``bias`` float32 vectors; not ``fused``, ``acc * scale`` and ``+ bias``
    each rounded (ncnn's x86 pack-8 depthwise kernel)."""
    ty = float_type(acc, F32)
    is_int = acc.type == I32 or (isinstance(acc.type, ir.VectorType) and acc.type.element == I32)
    a = b.sitofp(acc, ty) if is_int else acc
    if bias is None:
        return b.fmul(a, scale)
    if not fused:
        return b.fadd(b.fmul(a, scale), bias)
    return call_intrinsic(b, "llvm.fma", [a, scale, bias])


