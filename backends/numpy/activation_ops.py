"""Element-wise activation layers: ReLU, PReLU, Clip, Sigmoid, TanH, HardSigmoid, HardSwish, Swish,
Mish, ELU, SELU, AbsVal, BNLL, Exp, Log, Power, Threshold."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.common import clamp, hardswish, mish, per_channel, sigmoid
from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.ir import Layer

f32 = np.float32


@register_op("ReLU")
class ReLU(Op):
    """``max(x, 0)``, or leaky with ``0=slope``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape: ``x`` where positive, else ``0`` (or ``x * slope``)."""
        slope = self.p["slope"]
        if slope == 0:
            return clamp(x, 0.0, None) if x.dtype.kind == "f" else np.maximum(x, 0)
        return np.where(x > 0, x, x * f32(slope))


@register_op("PReLU")
class PReLU(Op):
    """Leaky ReLU with one slope, or one slope per channel (ncnn axis 0)."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.slope = layer.weight("slope")

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape: ``x`` where positive, else ``x * slope`` (the slope of the sample's channel)."""
        slope = self.slope[0] if self.slope.size == 1 else per_channel(self.slope, x)
        return np.where(x > 0, x, x * slope)


@register_op("Clip")
class Clip(Op):
    """Clamp to ``[0=min, 1=max]``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, clamped to ``[min, max]``."""
        if x.dtype.kind == "f":
            return clamp(x, self.p["min"], self.p["max"])
        return np.clip(x, f32(self.p["min"]), f32(self.p["max"]))


@register_op("Sigmoid")
class Sigmoid(Op):
    """``1 / (1 + exp(-x))``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``1 / (1 + exp(-x))``."""
        return sigmoid(x)


@register_op("TanH")
class TanH(Op):
    """``tanh(x)``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``tanh(x)``."""
        return np.tanh(x)


@register_op("HardSigmoid")
class HardSigmoid(Op):
    """``clamp(alpha * x + beta, 0, 1)``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``clip(alpha * x + beta, 0, 1)``."""
        return np.clip(x * f32(self.p["alpha"]) + f32(self.p["beta"]), 0.0, 1.0)


@register_op("HardSwish")
class HardSwish(Op):
    """``x * clamp(alpha * x + beta, 0, 1)``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``x * clip(alpha * x + beta, 0, 1)``."""
        return hardswish(x, self.p["alpha"], self.p["beta"])


@register_op("Swish")
class Swish(Op):
    """``x * sigmoid(x)``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``x * sigmoid(x)``."""
        return x * sigmoid(x)


@register_op("Mish")
class Mish(Op):
    """``x * tanh(softplus(x))``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``x * tanh(log(1 + exp(x)))``."""
        return mish(x)


@register_op("ELU")
class ELU(Op):
    """``x`` for ``x >= 0`` else ``alpha * (exp(x) - 1)``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape: ``x``, or ``alpha * (exp(x) - 1)`` where negative."""
        return np.where(x < 0, f32(self.p["alpha"]) * np.expm1(np.minimum(x, 0)), x)


@register_op("SELU")
class SELU(Op):
    """``lambda * (x if x >= 0 else alpha * (exp(x) - 1))``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape: ``lambda * x``, or ``lambda * alpha * (exp(x) - 1)`` where negative."""
        alpha, lam = f32(self.p["alpha"]), f32(self.p["lambda"])
        return np.where(x < 0, alpha * lam * np.expm1(np.minimum(x, 0)), x * lam)


@register_op("AbsVal")
class AbsVal(Op):
    """``|x|``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``|x|``."""
        return np.abs(x)


@register_op("BNLL")
class BNLL(Op):
    """``log(1 + exp(x))`` computed stably."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``log(1 + exp(x))`` in float32."""
        return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(f32)


@register_op("Exp")
class Exp(Op):
    """``base ** (shift + scale * x)`` (natural base when ``base == -1``)."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``base ** (shift + scale * x)``."""
        base, scale, shift = self.p["base"], f32(self.p["scale"]), f32(self.p["shift"])
        y = shift + scale * x
        return np.exp(y) if base == -1 else np.power(f32(base), y)


@register_op("Log")
class Log(Op):
    """``log_base(shift + scale * x)`` (natural log when ``base == -1``)."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``log_base(shift + scale * x)``."""
        base, scale, shift = self.p["base"], f32(self.p["scale"]), f32(self.p["shift"])
        y = np.log(shift + scale * x)
        return y if base == -1 else y / f32(np.log(base))


@register_op("Power")
class Power(Op):
    """``(shift + scale * x) ** power``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``(shift + scale * x) ** power``."""
        return np.power(f32(self.p["shift"]) + f32(self.p["scale"]) * x, f32(self.p["power"]))


@register_op("Threshold")
class Threshold(Op):
    """``1`` where ``x > threshold`` else ``0``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, ``1.0`` where ``x > threshold`` else ``0.0``."""
        return (x > f32(self.p["threshold"])).astype(f32)
