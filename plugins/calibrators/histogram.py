"""ncnn2table's histogram of ``|x|``, built in two passes and merged exactly.

Pass 1 finds the blob's absmax ``M``; pass 2 counts the nonzero ``|x|`` in ``bins`` equal bins
over ``[0, M]`` with ncnn2table's index ``min(int(|x| / M * bins), bins - 1)`` computed in float32.
Both passes merge exactly (max, then integer sums), so shards give the same histogram as one run.
"""

from __future__ import annotations

import math

import numpy as np

NCNN_BINS = 2048
"""ncnn2table's KL histogram size."""


class RangeHistogram:
    """Absmax (pass 1), then integer counts of the nonzero ``|x|`` over ``[0, absmax]`` (pass 2)."""

    def __init__(self, bins: int = NCNN_BINS) -> None:
        self.bins = bins
        self.absmax = np.float32(0)
        self.counts: np.ndarray | None = None  # None during pass 1

    @property
    def counting(self) -> bool:
        """True once pass 2 (counting) has started."""
        return self.counts is not None

    def observe(self, x: np.ndarray) -> None:
        """Pass 1: update the absmax.  Pass 2: count the values."""
        a = np.abs(np.asarray(x, dtype=np.float32)).ravel()
        if not a.size:
            return
        if not self.counting:
            m = np.float32(a.max())
            if not math.isfinite(m):
                raise ValueError("activation is not finite (inf or NaN)")
            self.absmax = max(self.absmax, m)
            return
        if self.absmax == 0:
            return
        zeros = a.size - int(np.count_nonzero(a))
        np.divide(a, self.absmax, out=a)
        np.multiply(a, np.float32(self.bins), out=a)
        index = a.astype(np.intp)
        np.minimum(index, self.bins - 1, out=index)
        counts = np.bincount(index, minlength=self.bins)
        counts[0] -= zeros  # ncnn2table skips exact zeros
        self.counts += counts

    def start_counting(self) -> None:
        """Begin pass 2 with the (merged) absmax of pass 1."""
        self.counts = np.zeros(self.bins, dtype=np.int64)

    def merge(self, other: RangeHistogram) -> None:
        """Pass 1: the larger absmax.  Pass 2 (same absmax): the summed counts."""
        if self.counting:
            if other.absmax != self.absmax:
                raise ValueError("cannot merge pass-2 histograms built on different absmax")
            self.counts += other.counts
        else:
            self.absmax = max(self.absmax, other.absmax)

    @property
    def nonzero(self) -> int:
        """How many nonzero values pass 2 counted."""
        return int(self.counts.sum()) if self.counting else 0

    def edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges (float64)."""
        return np.arange(self.bins + 1, dtype=np.float64) * (float(self.absmax) / self.bins)

    def quantile(self, fraction: float) -> float:
        """The value below which ``fraction`` of the counted values lie (linear inside a bin)."""
        if not self.nonzero:
            return 0.0
        counts = self.counts.astype(np.float64)
        cum = np.cumsum(counts)
        target = fraction * cum[-1]
        i = min(int(np.searchsorted(cum, target, side="left")), self.bins - 1)
        before = cum[i - 1] if i else 0.0
        inside = (target - before) / counts[i] if counts[i] > 0 else 1.0
        edges = self.edges()
        return float(min(edges[i] + inside * (edges[i + 1] - edges[i]), float(self.absmax)))


class HistogramCalibratorMixin:
    """Shared plumbing of calibrators built on one :class:`RangeHistogram` (two passes)."""

    passes = 2
    hist: RangeHistogram

    def observe(self, batch: np.ndarray) -> None:
        """Pass 1: absmax; pass 2: counts."""
        self.hist.observe(batch)

    def next_pass(self) -> None:
        """Start counting with the merged absmax."""
        self.hist.start_counting()

    def merge(self, other: HistogramCalibratorMixin) -> None:
        """Merge another shard's statistics of the same pass."""
        self.hist.merge(other.hist)

    @property
    def absmax(self) -> float:
        """Largest ``|x|`` seen."""
        return float(self.hist.absmax)
