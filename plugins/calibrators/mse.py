"""``mse``: the threshold that minimises the mean squared int8 error of the observed ``|x|``.

The values are those of the 2048-bin histogram (``kl``'s), each bin's count spread evenly over
the bin.  For a threshold ``T`` (step ``T / 127``, saturation at ``T``) the squared error of a value
is its rounding error below ``126.5`` steps and ``(x - T)^2`` above; its integral over a bin has a
closed form, so each candidate's error is exact for that model.  Candidates are ``T = t * absmax /
2048`` for ``t = 16 ... 2048``, searched coarse to fine: every 16th, then every one within 16 of
the best coarse one; the smallest error wins (the first on ties).
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.calibration import INT8_MAX, Calibrator, CalibratorFactory
from ncnnc.core.hookspecs import hookimpl
from ncnnc.plugins.calibrators.histogram import NCNN_BINS, HistogramCalibratorMixin, RangeHistogram

MIN_BINS = 16
"""Smallest candidate threshold, in bins."""

COARSE = 16
"""Stride of the first, coarse sweep over the candidates."""


def _rounding_error_integral(x: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``integral_0^x (u - step * round(u / step))^2 du`` (elementwise, x >= 0)."""
    half = step / 2
    n = np.floor((x + half) / step)
    f = x + half - n * step
    return n * step ** 3 / 12 + ((f - half) ** 3 + half ** 3) / 3 - step ** 3 / 24


def _error_integral(x: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """``integral_0^x`` of the squared int8 error with clipping threshold ``threshold``."""
    step = threshold / INT8_MAX
    knee = (INT8_MAX - 0.5) * step
    below = _rounding_error_integral(np.minimum(x, knee), step)
    above = np.where(x > knee, ((x - threshold) ** 3 - (knee - threshold) ** 3) / 3, 0.0)
    return below + above


def mse_errors(histogram: np.ndarray, absmax: float, candidates: np.ndarray) -> np.ndarray:
    """Total squared error of the histogram's values for each candidate bin count."""
    width = absmax / histogram.size
    live = np.flatnonzero(histogram)
    lo, hi, counts = live * width, (live + 1) * width, histogram[live]
    out = np.empty(candidates.size)
    for start in range(0, candidates.size, 128):
        t = candidates[start:start + 128, None] * width
        per_bin = (_error_integral(hi[None, :], t) - _error_integral(lo[None, :], t)) / width
        out[start:start + 128] = per_bin @ counts
    return out


class MSECalibrator(HistogramCalibratorMixin, Calibrator):
    """ncnn2table's 2048-bin histogram of ``|x|``; the threshold minimises the squared int8 error."""

    def __init__(self) -> None:
        self.hist = RangeHistogram(NCNN_BINS)

    def threshold(self) -> float:
        """The candidate ``t * absmax / 2048`` with the smallest squared error."""
        if not self.hist.nonzero:
            return 0.0
        hist, absmax = self.hist.counts.astype(np.float64), float(self.hist.absmax)
        coarse = np.arange(MIN_BINS, NCNN_BINS + 1, COARSE)
        best = int(coarse[np.argmin(mse_errors(hist, absmax, coarse))])
        fine = np.arange(max(MIN_BINS, best - COARSE + 1), min(NCNN_BINS, best + COARSE - 1) + 1)
        return float(fine[int(np.argmin(mse_errors(hist, absmax, fine)))] * absmax / NCNN_BINS)


@hookimpl
def ncnnc_calibrators() -> list[CalibratorFactory]:
    """The ``mse`` calibrator."""
    return [CalibratorFactory(name="mse", description="threshold minimising the int8 mean squared error",
                              create=MSECalibrator)]
