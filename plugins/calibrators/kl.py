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

import functools
from dataclasses import dataclass

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
    cum = np.concatenate([[0.0], np.cumsum(h)])
    p = h + KL_EPS
    plogp = np.concatenate([[0.0], np.cumsum(p * np.log(p))])
    return np.concatenate([_kl_block(block, h, cum, plogp) for block in _geometry(h.size, target_bins)])


@dataclass(frozen=True)
class _Block:
    """Where the levels of a block of candidate thresholds ``t`` fall on the bins: everything of the
    search that does not depend on the histogram, computed once per histogram size (every blob reuses it)."""

    t: np.ndarray           # (n, 1) candidate bin counts, float64
    width: np.ndarray       # (n, 1) bins per level
    edge_bin: np.ndarray    # (n, levels + 1) bin holding each level edge (clamped to the last bin)
    edge_frac: np.ndarray   # (n, levels + 1) the edge's offset inside that bin
    inside_eps: np.ndarray  # (n, levels) KL_EPS times the bins fully inside each level
    first: np.ndarray       # (n, levels) first bin fully inside each level
    stop: np.ndarray        # (n, levels) one past the last bin fully inside each level
    straddle: np.ndarray    # (n, levels - 1) bin holding each inner level edge
    frac: np.ndarray        # (n, levels - 1) the inner edge's offset inside that bin
    straddles: np.ndarray   # (n, levels - 1) whether the inner edge cuts a bin


@functools.lru_cache(maxsize=4)
def _geometry(bins: int, levels: int) -> tuple[_Block, ...]:
    """The candidate thresholds ``levels ... bins - 1`` in blocks of 256, with their level geometry."""
    blocks = []
    thresholds = np.arange(levels, bins)
    for start in range(0, thresholds.size, 256):
        t = thresholds[start:start + 256][:, None].astype(np.float64)
        width = t / levels
        edges = np.arange(levels + 1)[None, :] * width
        edge_bin = np.minimum(np.floor(edges).astype(np.intp), bins - 1)
        first = np.ceil(edges[:, :-1]).astype(np.intp)  # bins fully inside level j: [ceil(edge_j), floor(edge_j+1))
        stop = np.floor(edges[:, 1:]).astype(np.intp)
        inner = edges[:, 1:-1]
        straddle = np.floor(inner).astype(np.intp)
        frac = inner - straddle
        blocks.append(_Block(t, width, edge_bin, edges - edge_bin, (stop - first) * KL_EPS, first, stop, straddle,
                             frac, frac > 0))
    return tuple(blocks)


def _kl_block(g: _Block, h: np.ndarray, cum: np.ndarray, plogp: np.ndarray) -> np.ndarray:
    """Divergences for a block of candidate thresholds."""
    mass_below = cum[g.edge_bin] + g.edge_frac * h[g.edge_bin]  # mass on [0, edge), each bin spread evenly
    q = np.diff(mass_below, axis=1) / g.width                   # value of each level per bin
    inside_p = g.inside_eps + cum[g.stop] - cum[g.first]
    ti = g.t[:, 0].astype(np.intp)
    tail = cum[-1] - cum[ti]
    inside_p[:, -1] += tail                                      # P's last bin carries the clipped mass
    cross = -np.sum(inside_p * np.log(q + KL_EPS), axis=1)
    # bins straddling an inner level edge
    e = KL_EPS + g.frac * q[:, :-1] + (1.0 - g.frac) * q[:, 1:]
    ps = KL_EPS + h[g.straddle]
    cross -= np.sum(np.where(g.straddles, ps * np.log(np.where(g.straddles, e, 1.0)), 0.0), axis=1)
    # sum of P log P over the t bins, the last one with the clipped mass
    last = KL_EPS + h[ti - 1] + tail
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
