"""Which int8 weights ncnn's winograd convolutions compute exactly: the 6-bit rule and the safe 8-bit one.

ncnn runs an int8 3x3 stride-1 dilation-1 Convolution with winograd F(4,3) (F(2,3) when asked).  Its
kernels (``src/layer/{x86,arm}/convolution_3x3_winograd_int8.h``) transform the int8 weights and the
int8 input tile with small integer matrices into int16 (at most ``144 * 127`` and ``100 * 127``: they
always fit), multiply and accumulate in int32 lanes that wrap (``vpdpwssd``, ``pmaddwd``, ``smlal``),
and transform the result back to ``576 y`` (F(4,3); ``4 y`` for F(2,3)), ``y`` the direct convolution's
int32 sum, before dividing by 576.  Every step is integer addition and multiplication modulo 2^32, so
the result is exact exactly when ``|576 y| < 2^31``.  With int8 inputs (within +-127) ``|y| <= 127 *
sum |q|`` over one output channel's int8 weights ``q``, hence the per-channel budget
:data:`WINOGRAD_SUM_LIMIT` on ``sum |q|``.

ncnn2table does not check that sum: it quantizes these layers to 6 bits (``31 / absmax``), which keeps a
channel within the budget when it has at most 105 input channels (``127 * 31 * 9 * 105 * 576 < 2^31``),
at the price of four times coarser weights than every other layer's.  :func:`winograd_scales` gives
each channel the largest ``qmax`` (up to 127, 8 bits) whose rounded weights stay within the budget: as
fine as the runtime computes exactly, for any input.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.errors import NcnncError
from ncnnc.core.int8 import INT8_MAX, float2int8
from ncnnc.core.ir import Layer

INT6_MAX = 31
"""ncnn2table quantizes the weights of 3x3 stride-1 dilation-1 convolutions to 6 bits (int8 winograd F43)."""

WINOGRAD_SUM_LIMIT = (2**31 - 1) // (576 * INT8_MAX)
"""The largest ``sum |q|`` over one output channel's int8 weights for which ncnn's int8 winograd F(4,3)
is exact for every int8 input: ``576 * 127 * sum |q|`` must fit int32 (29356)."""

WINOGRAD_BITS = (6, 8)
"""``winograd_bits`` choices: 6 as ncnn2table; 8: each channel as fine as the runtime computes exactly."""


def check_winograd_bits(bits: int) -> None:
    """Raise a user error unless ``bits`` is one of :data:`WINOGRAD_BITS`."""
    if bits not in WINOGRAD_BITS:
        raise NcnncError(f"winograd bits {bits}: expected one of {', '.join(map(str, WINOGRAD_BITS))}")


def is_winograd_conv(layer: Layer) -> bool:
    """A 3x3 stride-1 dilation-1 Convolution: the layers ncnn's int8 winograd kernels run."""
    return layer.type == "Convolution" and all(
        layer.p(k) == v for k, v in (("kernel_w", 3), ("kernel_h", 3), ("dilation_w", 1),
                                      ("dilation_h", 1), ("stride_w", 1), ("stride_h", 1)))


def weight_sums(rows: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``sum |q|`` per row of the int8 weights ``q = float2int8(rows * scale)`` (the quantizer's rounding)."""
    scaled = rows.astype(np.float32) * np.asarray(scales, np.float32).reshape(-1, 1)
    return np.abs(float2int8(scaled).astype(np.int64)).sum(axis=1)


def within_winograd_budget(rows: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per row, whether the int8 weights at ``scales`` keep ncnn's winograd exact for every input."""
    return weight_sums(rows, scales) <= WINOGRAD_SUM_LIMIT


def as_written(scales: np.ndarray) -> np.ndarray:
    """``scales`` as a table holds them once written and read back (:func:`~ncnnc.core.table.format_scale`),
    float32."""
    from ncnnc.core.table import as_written as one

    return np.array([one(v) for v in np.ravel(scales)], np.float32)


def winograd_scales(rows: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Per row, ``qmax / clip`` with the largest integer ``qmax <= 127`` whose weights stay within
    :data:`WINOGRAD_SUM_LIMIT` at the scale the table will hold (found by bisection: the sum grows with
    ``qmax``); ``clip`` is the weight magnitude mapped to ``qmax`` (the row's absmax, or a smaller clip).
    Rows with ``clip <= 0`` get 1.0."""
    clip = np.asarray(clip, np.float32)
    live = clip > 0
    safe_clip = np.where(live, clip, np.float32(1))

    def scale(qmax: np.ndarray) -> np.ndarray:
        return np.where(live, as_written(np.maximum(qmax, 1).astype(np.float32) / safe_clip), np.float32(1))

    lo = np.zeros(len(rows), np.int64)  # qmax = 0 is always within the budget
    hi = np.full(len(rows), INT8_MAX, np.int64)
    while np.any(lo < hi):
        mid = (lo + hi + 1) // 2
        ok = within_winograd_budget(rows, scale(mid))
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid - 1)
    return scale(lo).astype(np.float32)
