"""``kl``: entropy calibration as ncnn2table does it (TensorRT's method, ncnn's conventions).

ncnn2table's conventions, kept exactly:

- a 2048-bin histogram of the nonzero ``|x|`` over ``[0, absmax]`` (exact zeros are skipped);
- the histogram is normalised to sum 1 and stored as float32;
- candidate thresholds are the bin counts ``t = 128 ... 2047``; for each, the reference
  distribution ``P`` is the first ``t`` bins plus ``1e-4`` each, the mass beyond ``t`` added to the
  last one; ``Q`` averages the first ``t`` bins (without that outside mass) into 128 levels of
  width ``t / 128`` (fractional bins counted by their overlap, zero bins included), expanded
  back over the ``t`` bins the same way, plus ``1e-4``; the divergence is ``sum P log(P / Q)``
  without renormalising either;
- the first ``t`` with the smallest divergence wins; threshold ``(t + 0.5) * absmax / 2048``
  and scale ``127 / threshold``, both in float32.

The search is computed for all 1920 candidates at once: a bin of ``Q``'s expansion lies either
inside one level (its value is that level's) or straddles one level edge, so each candidate's
divergence is a sum over its 128 levels and at most 127 straddling bins, with prefix sums over
the histogram for the rest.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.calibration import Calibrator, CalibratorFactory
from ncnnc.core.hookspecs import hookimpl
from ncnnc.plugins.calibrators.histogram import NCNN_BINS, HistogramCalibratorMixin, RangeHistogram

TARGET_BINS = 128
"""Quantized levels of one sign (ncnn2table's ``target_bin``)."""

KL_EPS = 1e-4
"""Added to every bin of both distributions (ncnn2table's ``kl_eps``)."""


def normalize(histogram: np.ndarray) -> np.ndarray:
    """ncnn2table's ``histogram_normed``: counts over their sum, rounded to float32."""
    h = np.asarray(histogram, dtype=np.float64)
    total = h.sum()
    if total <= 0:
        return np.zeros_like(h, dtype=np.float32)
    return (h / total).astype(np.float32)


def kl_divergences(histogram: np.ndarray, target_bins: int = TARGET_BINS) -> np.ndarray:
    """The divergence of every candidate ``t = target_bins ... len(histogram) - 1`` (float64)."""
    h = normalize(histogram).astype(np.float64)
    n = h.size
    thresholds = np.arange(target_bins, n)
    cum = np.concatenate([[0.0], np.cumsum(h)])
    p = h + KL_EPS
    plogp = np.concatenate([[0.0], np.cumsum(p * np.log(p))])
    result = np.empty(thresholds.size)
    for start in range(0, thresholds.size, 256):
        t = thresholds[start:start + 256]
        result[start:start + 256] = _kl_block(t, h, cum, plogp, target_bins)
    return result


def _mass_below(x: np.ndarray, h: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Histogram mass on ``[0, x)`` with each bin spread evenly over its width."""
    k = np.minimum(np.floor(x).astype(np.intp), h.size - 1)
    return cum[k] + (x - k) * h[k]


def _kl_block(t: np.ndarray, h: np.ndarray, cum: np.ndarray, plogp: np.ndarray, levels: int) -> np.ndarray:
    """Divergences for a block of candidate thresholds ``t``."""
    t = t[:, None].astype(np.float64)
    width = t / levels
    edges = np.arange(levels + 1)[None, :] * width          # level edges, shape (n, levels + 1)
    level_mass = np.diff(_mass_below(edges, h, cum), axis=1)  # Q's levels before averaging
    q = level_mass / width                                   # value of each level per bin
    # bins fully inside level j: [ceil(edge_j), floor(edge_j+1))
    first = np.ceil(edges[:, :-1]).astype(np.intp)
    stop = np.floor(edges[:, 1:]).astype(np.intp)
    inside_p = (stop - first) * KL_EPS + cum[stop] - cum[first]
    tail = cum[-1] - cum[t[:, 0].astype(np.intp)]
    inside_p[:, -1] += tail                                   # P's last bin carries the clipped mass
    cross = -np.sum(inside_p * np.log(q + KL_EPS), axis=1)
    # bins straddling an inner level edge
    inner = edges[:, 1:-1]
    s = np.floor(inner).astype(np.intp)
    frac = inner - s
    straddles = frac > 0
    e = KL_EPS + frac * q[:, :-1] + (1.0 - frac) * q[:, 1:]
    ps = KL_EPS + h[s]
    cross -= np.sum(np.where(straddles, ps * np.log(np.where(straddles, e, 1.0)), 0.0), axis=1)
    # sum of P log P over the t bins, the last one with the clipped mass
    ti = t[:, 0].astype(np.intp)
    last_plain = KL_EPS + h[ti - 1]
    last = last_plain + tail
    entropy = plogp[ti - 1] + last * np.log(last)
    # the straddling bins were counted in neither P sum of a level: their P log P is in `entropy`
    return entropy + cross


def kl_threshold_bin(histogram: np.ndarray, target_bins: int = TARGET_BINS) -> int:
    """ncnn2table's best bin count ``t`` for a histogram (the first minimum)."""
    kl = kl_divergences(histogram, target_bins)
    return int(np.argmin(kl)) + target_bins


def bin_threshold(t: int, absmax: float, bins: int = NCNN_BINS) -> float:
    """ncnn2table's threshold for bin count ``t``: ``(t + 0.5) * absmax / bins`` in float32."""
    return float(np.float32(np.float32(t + 0.5) * np.float32(absmax)) / np.float32(bins))


class KLCalibrator(HistogramCalibratorMixin, Calibrator):
    """Entropy (KL divergence) calibration over ncnn2table's 2048-bin histogram of ``|x|``."""

    def __init__(self) -> None:
        self.hist = RangeHistogram(NCNN_BINS)
        self._last: tuple[tuple[float, bytes], float] | None = None

    def threshold(self) -> float:
        """``(t + 0.5) * absmax / 2048`` for the best bin count ``t`` (remembered for the same histogram)."""
        if not self.hist.nonzero:
            return 0.0
        key = (float(self.hist.absmax), self.hist.counts.tobytes())
        if self._last is None or self._last[0] != key:
            self._last = (key, bin_threshold(kl_threshold_bin(self.hist.counts), self.hist.absmax))
        return self._last[1]


@hookimpl
def ncnnc_calibrators() -> list[CalibratorFactory]:
    """The ``kl`` calibrator."""
    return [CalibratorFactory(
        name="kl", description="entropy (KL divergence) calibration, 2048 bins, as ncnn2table",
        create=KLCalibrator)]
