"""Tile, MatMul, PixelShuffle, GLU, Embed and the activations Softplus, Shrink, CELU, Erf (fp32).

Inputs are batched: a leading ``N`` axis before the blob's numpy-order shape.
"""

from __future__ import annotations

import math

import numpy as np

from ncnnc.backends.numpy.common import np_axis, sigmoid
from ncnnc.backends.numpy.registry import INT8, Op, register_op
from ncnnc.core.ir import Layer

f32 = np.float32
_erf = np.frompyfunc(math.erf, 1, 1)


@register_op("Tile")
class Tile(Op):
    """Repeat the blob: ``2=repeats`` numpy-style (aligned to the last axes), else ``1=tiles`` along ``0=axis``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """The tiled blob."""
        dims = x.ndim - 1
        repeats = list(self.p["repeats"])
        if len(repeats) > dims:
            raise self.unsupported("repeats longer than the blob's rank")
        if repeats:
            repeats = [1] * (dims - len(repeats)) + repeats
        else:
            repeats = [1] * dims
            repeats[self.p["axis"]] = self.p["tiles"]
        return np.tile(x, [1, *repeats])


@register_op("MatMul")
class MatMul(Op):
    """numpy's matmul of two blobs (leading axes broadcast); ``0=transB`` transposes the last two of B."""

    def run(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a @ b`` per batch item, in float32."""
        if a.ndim < 3 or b.ndim < 3:
            raise self.unsupported("on a 1-D blob")
        if self.p["transB"]:
            b = np.swapaxes(b, -1, -2)
        ra, rb = a.ndim - 1, b.ndim - 1
        rank = max(ra, rb)
        a = a.reshape(a.shape[:1] + (1,) * (rank - ra) + a.shape[1:])
        b = b.reshape(b.shape[:1] + (1,) * (rank - rb) + b.shape[1:])
        return np.matmul(a, b, dtype=f32)


@register_op("PixelShuffle")
class PixelShuffle(Op):
    """Depth to space by ``0=upscale_factor`` r: mode 0 reads channel ``c * r * r + i * r + j``, mode 1
    channel ``(i * r + j) * outc + c``, for output channel c at row offset i and column offset j."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, c * r * r, h, w) -> (N, c, h * r, w * r)``."""
        n, c, h, w = x.shape
        r = self.p["upscale_factor"]
        oc = c // (r * r)
        if self.p["mode"] == 0:
            y = x.reshape(n, oc, r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
        else:
            y = x.reshape(n, r, r, oc, h, w).transpose(0, 3, 4, 1, 5, 2)
        return np.ascontiguousarray(y.reshape(n, oc, h * r, w * r))


@register_op("GLU")
class GLU(Op):
    """First half along ``0=axis`` times the sigmoid of the second half."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """The blob with its axis halved."""
        a, b = np.split(x, 2, axis=np_axis(self.p["axis"], x.ndim - 1))
        return (a * sigmoid(b)).astype(f32, copy=False)


@register_op("Embed")
class Embed(Op):
    """Row lookup: each element of the 1-D input, read as an int32 (as ncnn reads it) and clamped to
    ``[0, input_dim)``, picks a row of the ``(input_dim, num_output)`` table, plus the bias."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.table = layer.weights["weight"].data.astype(f32).reshape(self.p["input_dim"], self.p["num_output"])
        self.bias = layer.weights["bias"].data.astype(f32) if self.p["bias_term"] else None

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, words) -> (N, words, num_output)``."""
        ids = np.ascontiguousarray(x, dtype=f32).reshape(x.shape[0], -1).view(np.int32)
        out = self.table[np.clip(ids, 0, self.p["input_dim"] - 1)]
        return out + self.bias if self.bias is not None else out


@register_op("Embed", INT8)
class Int8Embed(Embed):
    """int8 Embed (``18=2``): the picked int8 row times ``1 / weight scale``, plus the bias (float32, as
    ``src/layer/embed.cpp``)."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.table = self.table * (f32(1) / f32(layer.weight("weight_int8_scales").ravel()[0]))


@register_op("Softplus")
class Softplus(Op):
    """``log(exp(x) + 1)``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Element-wise softplus in float32."""
        with np.errstate(over="ignore"):
            return np.log(np.exp(x) + f32(1)).astype(f32, copy=False)


@register_op("Shrink")
class Shrink(Op):
    """``x + bias`` below ``-lambd``, ``x - bias`` above ``lambd``, 0 between."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Element-wise shrink in float32."""
        bias, lambd = f32(self.p["bias"]), f32(self.p["lambd"])
        return np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, f32(0))).astype(f32, copy=False)


@register_op("CELU")
class CELU(Op):
    """``x`` for ``x >= 0``, else ``alpha * (exp(x / alpha) - 1)``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Element-wise CELU in float32."""
        alpha = f32(self.p["alpha"])
        with np.errstate(over="ignore"):
            return np.where(x < 0, (np.exp(x / alpha) - f32(1)) * alpha, x).astype(f32, copy=False)


@register_op("Erf")
class Erf(Op):
    """The error function."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Element-wise erf in float32."""
        return _erf(x.astype(np.float64)).astype(f32)
