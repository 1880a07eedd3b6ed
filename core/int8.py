"""ncnn's int8 arithmetic on numpy arrays: float -> int8 rounding and saturation, per-row weight
quantization, and the absmax scales of weight-only (dynamic) quantization.

ncnn turns a float into int8 by multiplying it with a scale in float32, rounding half away from
zero (its SIMD paths add +-0.5 in float32 and truncate) and saturating to [-127, 127]; -128 is
never produced.  The quantizer uses these functions to write int8 weights byte for byte as
``ncnn2int8`` does, the numpy backend to simulate the runtime's int8 layers.
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127


def float2int8(values: np.ndarray) -> np.ndarray:
    """Round half away from zero in float32 (``trunc(v + copysign(0.5, v))``), saturate to +-127."""
    v = np.asarray(values, dtype=np.float32)
    rounded = np.trunc(v + np.copysign(np.float32(0.5), v))
    return np.clip(rounded, -INT8_MAX, INT8_MAX).astype(np.int8)


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
    """``a * b + c`` on float32 values rounded once to float32, as a fused multiply-add instruction does.

    The product of two float32 values is exact in float64; the float64 sum may round, and rounding
    that sum to float32 differs from rounding the exact value only when the float64 sum lands exactly
    on a tie between two float32 values.  That case is resolved with the sum's exact error (TwoSum).
    """
    a64 = np.asarray(a, np.float32).astype(np.float64)
    p = a64 * np.asarray(b, np.float32).astype(np.float64)
    if c is None:
        return p.astype(np.float32)
    c64 = np.asarray(c, np.float32).astype(np.float64)
    x = p + c64
    virtual = x - p
    err = (p - (x - virtual)) + (c64 - virtual)  # x + err == p + c exactly
    r = x.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        toward = np.where(x > r.astype(np.float64), np.float32(np.inf), np.float32(-np.inf))
        other = np.nextafter(r, toward)
        tie = ((r.astype(np.float64) + other.astype(np.float64)) * 0.5 == x) & (err != 0)
    if np.any(tie):
        r = np.where(tie, np.where(err > 0, np.maximum(r, other), np.minimum(r, other)), r).astype(np.float32)
    return r


def quantize_rows(weights: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Quantize each row of ``weights`` (reshaped to ``(len(scales), -1)``) with its own scale.

    Returns int8 values in the original shape, as ncnn's ``quantize_to_int8`` does for a weight
    blob with one scale per output channel (or per group, or one for the whole blob).
    """
    w = np.asarray(weights, dtype=np.float32)
    s = np.asarray(scales, dtype=np.float32).reshape(-1, 1)
    return float2int8(w.reshape(s.shape[0], -1) * s).reshape(w.shape)


def absmax_scales(weights: np.ndarray, rows: int) -> np.ndarray:
    """``127 / absmax`` of each of ``rows`` rows (1.0 for an all-zero row), in float32.

    The scales ncnn2int8 computes itself for weight-only quantization (RNN, LSTM, GRU, Embed).
    """
    w = np.abs(np.asarray(weights, dtype=np.float32).reshape(rows, -1))
    absmax = w.max(axis=1) if w.size else np.zeros(rows, np.float32)
    with np.errstate(divide="ignore"):
        scales = np.float32(INT8_MAX) / absmax
    return np.where(absmax == 0, np.float32(1.0), scales).astype(np.float32)
