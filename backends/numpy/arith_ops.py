"""Arithmetic layers: BinaryOp (ncnn broadcasting), UnaryOp, Eltwise, BatchNorm, Scale, Bias."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ncnnc.backends.numpy.common import per_channel
from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.ir import Layer

f32 = np.float32

BINARY: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    0: np.add,
    1: np.subtract,
    2: np.multiply,
    3: np.divide,
    4: np.maximum,
    5: np.minimum,
    6: np.power,
    7: lambda a, b: b - a,
    8: lambda a, b: b / a,
    9: lambda a, b: np.power(b, a),
    10: np.arctan2,
    11: lambda a, b: np.arctan2(b, a),
    12: np.fmod,
    13: lambda a, b: np.fmod(b, a),
    14: np.logaddexp,
    15: lambda a, b: np.floor(a / b),
    16: lambda a, b: np.floor(b / a),
    17: lambda a, b: a - b * np.rint(a / b),
    18: lambda a, b: b - a * np.rint(b / a),
}
"""BinaryOp ``0=op_type`` -> ``f(a, b)``: 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min, 6 pow, 7-9 reversed
sub/div/pow, 10 atan2, 11 reversed atan2, 12 fmod, 13 reversed fmod, 14 logaddexp, 15 floor division,
16 reversed floor division, 17 remainder (IEEE: ``a - b * rint(a / b)``), 18 reversed remainder.
(The runtime's SIMD forms of 13/17/18 can differ from the exact value where the quotient is exactly an
integer or half-integer.)"""

UNARY: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    0: np.abs, 1: np.negative, 2: np.floor, 3: np.ceil, 4: np.square, 5: np.sqrt,
    6: lambda x: 1 / np.sqrt(x), 7: np.exp, 8: np.log, 9: np.sin, 10: np.cos, 11: np.tan,
    12: np.arcsin, 13: np.arccos, 14: np.arctan, 15: lambda x: 1 / x, 16: np.tanh, 17: np.log10,
    18: np.rint, 19: np.trunc, 20: np.sign, 21: np.expm1, 22: np.sinh, 23: np.arcsinh, 24: np.cosh,
    25: np.arccosh, 26: np.arctanh, 27: np.log1p,
}
"""UnaryOp ``0=op_type`` -> ``f(x)``: 0 abs, 1 neg, 2 floor, 3 ceil, 4 square, 5 sqrt, 6 rsqrt, 7 exp, 8 log,
9 sin, 10 cos, 11 tan, 12 asin, 13 acos, 14 atan, 15 reciprocal, 16 tanh, 17 log10, 18 round (half to even),
19 trunc, 20 sign, 21 expm1, 22 sinh, 23 asinh, 24 cosh, 25 acosh, 26 atanh, 27 log1p.  Outside a
function's domain the runtime's SIMD paths may give other values than NaN (acosh of x < 1 gives
log(FLT_MIN) in full SIMD lanes); these ops give NaN there."""


def expand_for_binary(shape: tuple[int, ...], other: tuple[int, ...]) -> tuple[int, ...]:
    """ncnn's rule for lifting a lower-rank BinaryOp operand (numpy order, no batch).

    A 1-D operand whose length equals the other's outermost axis (h of 2-D, c of 3-D/4-D) lines up
    with that axis, otherwise with ``w``; 2-D and 3-D operands line up with the outermost axes.
    """
    dims, outdims = len(shape), len(other)
    if dims >= outdims:
        return shape
    if dims == 1:
        (length,) = shape
        if length == other[0]:
            return (length,) + (1,) * (outdims - 1)
        return (1,) * (outdims - 1) + (length,)
    return shape + (1,) * (outdims - dims)


def ncnn_broadcast(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reshape two batched operands so that numpy broadcasting does what ncnn's BinaryOp does."""
    sa, sb = a.shape[1:], b.shape[1:]
    ea, eb = expand_for_binary(sa, sb), expand_for_binary(sb, sa)
    return a.reshape(a.shape[:1] + ea), b.reshape(b.shape[:1] + eb)


@register_op("BinaryOp")
class BinaryOp(Op):
    """``a op b`` with ncnn's broadcasting, or ``a op scalar`` when ``1=with_scalar``."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        op = self.p["op_type"]
        if op not in BINARY:
            raise self.unsupported(f"op_type {op}")
        self.fn = BINARY[op]

    def run(self, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """``a op b`` broadcast as ncnn does (``b`` unused with a scalar), in float32."""
        with np.errstate(all="ignore"):
            if self.p["with_scalar"]:
                return self.fn(a, f32(self.p["b"])).astype(f32, copy=False)
            a2, b2 = ncnn_broadcast(a, b)
            return self.fn(a2, b2).astype(f32, copy=False)


@register_op("UnaryOp")
class UnaryOp(Op):
    """Element-wise math function chosen by ``0=op_type``."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        op = self.p["op_type"]
        if op not in UNARY:
            raise self.unsupported(f"op_type {op}")
        self.fn = UNARY[op]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, the chosen function of ``x`` in float32."""
        with np.errstate(all="ignore"):
            return self.fn(x).astype(f32, copy=False)


@register_op("Eltwise")
class Eltwise(Op):
    """Element-wise product (0), sum with optional coefficients (1) or max (2) of all inputs."""

    def run(self, *xs: np.ndarray) -> np.ndarray:
        """Same shape as the inputs: their product, (weighted) sum or maximum."""
        op, coeffs = self.p["op_type"], self.p["coeffs"]
        if op == 0:
            out = xs[0] * xs[1]
            for x in xs[2:]:
                out *= x
            return out
        if op == 1:
            if not coeffs:
                out = xs[0] + xs[1]
                for x in xs[2:]:
                    out += x
                return out
            out = xs[0] * f32(coeffs[0])
            for x, c in zip(xs[1:], coeffs[1:]):
                out += x * f32(c)
            return out
        if op == 2:
            out = np.maximum(xs[0], xs[1])
            for x in xs[2:]:
                np.maximum(out, x, out=out)
            return out
        raise self.unsupported(f"op_type {op}")


@register_op("BatchNorm")
class BatchNorm(Op):
    """``x * b + a`` per channel, with ``b = slope / sqrt(var + eps)``, ``a = bias - mean * b``."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        slope, mean, var, bias = (layer.weight(n) for n in ("slope", "mean", "var", "bias"))
        sqrt_var = np.sqrt(var + f32(self.p["eps"])).astype(f32)
        self.a = (bias - slope * mean / sqrt_var).astype(f32)
        self.b = (slope / sqrt_var).astype(f32)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``x * b + a`` per channel."""
        return x * per_channel(self.b, x) + per_channel(self.a, x)


@register_op("Scale")
class Scale(Op):
    """Per-channel scale (from weights, or from a second input when ``0=-233``) and optional bias."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.scale = None if self.p["scale_data_size"] == -233 else layer.weight("scale")
        self.bias = layer.weight("bias") if self.p["bias_term"] and "bias" in layer.weights else None

    def run(self, x: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """Same shape, ``x * scale (+ bias)`` per channel; ``scale`` is the second input when given."""
        if scale is None:
            out = x * per_channel(self.scale, x)
        else:
            out = x * scale.reshape(scale.shape[:2] + (1,) * (x.ndim - 2))
        if self.bias is not None:
            out += per_channel(self.bias, x)
        return out


@register_op("Bias")
class Bias(Op):
    """Per-channel bias.  ncnn indexes it by the channel of a 3-D blob only, so 1-D and 2-D blobs
    (one channel) get ``bias[0]`` everywhere."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.bias = layer.weight("bias")

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``x + bias`` (per channel of a 3-D blob, ``bias[0]`` otherwise)."""
        if x.ndim < 4:
            return x + self.bias[0]
        return x + per_channel(self.bias, x)
