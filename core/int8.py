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
