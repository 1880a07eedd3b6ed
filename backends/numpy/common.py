"""Helpers shared by the numpy ops: fused activations, ncnn axes, per-channel broadcasting."""

from __future__ import annotations

import numpy as np

from ncnnc.core.errors import UnsupportedError


def sigmoid(x: np.ndarray) -> np.ndarray:
    """ncnn's sigmoid, ``1 / (1 + exp(-x))`` in float32."""
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32, copy=False)


def mish(x: np.ndarray) -> np.ndarray:
    """``x * tanh(log(exp(x) + 1))``."""
    with np.errstate(over="ignore"):
        return (x * np.tanh(np.log1p(np.exp(x)))).astype(np.float32, copy=False)


def hardswish(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """``x * clamp(alpha * x + beta, 0, 1)`` (ncnn's HardSwish)."""
    return x * np.clip(x * np.float32(alpha) + np.float32(beta), 0.0, 1.0)


def _rows(x: np.ndarray) -> np.ndarray | None:
    """``x`` as a 2-D view whose rows hold at least ~1024 values, or None when it is not contiguous.

    numpy's vectorised ``maximum``/``minimum`` loops need two arrays: an op with a broadcast scalar
    runs several times slower than one with a broadcast row.
    """
    if not x.flags.c_contiguous or x.size == 0:
        return None
    length = 1
    for d in reversed(x.shape):
        length *= d
        if length >= 1024:
            break
    return x.reshape(-1, length)


def clamp(x: np.ndarray, low: float | None, high: float | None, inplace: bool = False) -> np.ndarray:
    """``min(max(x, low), high)``, bounds rounded to float32 (``None`` skips one), bit for bit what
    ``np.clip`` / ``np.maximum`` give (NaN propagates); into ``x`` itself with ``inplace``.  For float ``x``."""
    out = x if inplace else np.empty(x.shape, x.dtype)
    low, high = (None if v is None else x.dtype.type(np.float32(v)) for v in (low, high))
    source, target = _rows(x), _rows(out)
    for bound, op in ((low, np.maximum), (high, np.minimum)):
        if bound is None:
            continue
        if source is None or target is None:
            op(x, bound, out=out)
        else:
            op(source, np.full(source.shape[1], bound, x.dtype), out=target)
            source = target
        x = out
    return out


def activate(x: np.ndarray, act_type: int, params: list, where: str = "") -> np.ndarray:
    """Apply a fused activation (``9=`` type, ``10=`` params) of Convolution/InnerProduct/... layers.

    1 ReLU, 2 leaky ReLU (slope), 3 clip (min, max), 4 sigmoid, 5 mish, 6 hardswish (alpha, beta).
    """
    if act_type == 0:
        return x
    if act_type == 1:
        return clamp(x, 0.0, None, inplace=True)
    if act_type == 2:
        return np.where(x > 0, x, x * np.float32(params[0]))
    if act_type == 3:
        return clamp(x, params[0], params[1], inplace=True)
    if act_type == 4:
        return sigmoid(x)
    if act_type == 5:
        return mish(x)
    if act_type == 6:
        return hardswish(x, params[0], params[1])
    raise UnsupportedError(f"numpy backend: fused activation type {act_type} is not supported", where=where)


def np_axis(axis: int, dims: int) -> int:
    """The numpy axis of a batched array for an ncnn axis (negative counts from the end)."""
    if axis < 0:
        axis += dims
    return axis + 1


def per_channel(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Shape 1-D per-"channel" values (ncnn axis 0) to broadcast against batched ``x``."""
    return values.reshape((1, -1) + (1,) * (x.ndim - 2))


def as_image(x: np.ndarray) -> np.ndarray:
    """A batched 1-D, 2-D or 3-D blob as ncnn's image layers (convolution, pooling) see it: ``(N, c, h, w)``.

    A 1-D blob ``(w,)`` is one channel of one row, ``(1, 1, w)``; a 2-D blob ``(h, w)`` one channel,
    ``(1, h, w)``.  Callers refuse 4-D blobs (they belong to the 3-D layer types).
    """
    if x.ndim == 2:
        return x[:, None, None, :]
    if x.ndim == 3:
        return x[:, None]
    return x
