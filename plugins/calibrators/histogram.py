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

_CHUNK = 1 << 16
"""Values binned at a time (the temporaries stay in cache)."""


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
        x = np.asarray(x, dtype=np.float32)
        if not x.size:
            return
        if not self.counting:
            high, low = x.max(), x.min()
            if not (math.isfinite(high) and math.isfinite(low)):
                raise ValueError("activation is not finite (inf or NaN)")
            self.absmax = max(self.absmax, np.float32(max(high, -low)))
            return
        if self.absmax == 0:
            return
        self.counts += self._count(x.reshape(-1))

    def _count(self, flat: np.ndarray) -> np.ndarray:
        """Counts of the nonzero ``|x|`` per bin, in cache-sized chunks.

        The bin is ``int(|x| / absmax * bins)`` in float32.  When ``bins`` is a power of two and
        ``absmax / bins`` is exact, that is ``int(|x| / (absmax / bins))``: scaling by a power of
        two commutes with rounding (below the normal range both give bin 0).  ``|x| = absmax``
        gives ``bins``, counted in the last bin.
        """
        bins, absmax = self.bins, self.absmax
        step = np.float32(absmax / np.float32(bins))
        one_division = bins & (bins - 1) == 0 and step >= np.finfo(np.float32).tiny and step * bins == absmax
        size = min(flat.size, _CHUNK)
        values, index = np.empty(size, np.float32), np.empty(size, np.int32)  # int32: 4x faster to convert to
        counts = np.zeros(bins, np.int64)
        zeros = 0
        for start in range(0, flat.size, size):
            n = min(size, flat.size - start)
            a = np.abs(flat[start:start + n], out=values[:n])
            zeros += n - np.count_nonzero(a.view(np.int32))  # after abs, a zero is +0.0: all bits clear
            if one_division:
                np.divide(a, step, out=a)
            else:
                np.divide(a, absmax, out=a)
                np.multiply(a, np.float32(bins), out=a)
            np.minimum(a, np.float32(bins), out=a)  # values above absmax (if a caller shows more): last bin
            idx = index[:n]
            idx[...] = a  # truncation: the floor of a nonnegative value
            found = np.bincount(idx, minlength=bins + 1)
            counts[:bins] += found[:bins]
            counts[bins - 1] += found[bins]  # |x| = absmax (or above)
        counts[0] -= zeros  # ncnn2table skips exact zeros
        return counts

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

    def replay_form(self, batch: np.ndarray) -> np.ndarray:
        """The nonzero ``|x|`` of the batch, flat: all that counting needs (less to keep, less to bin)."""
        a = np.abs(np.asarray(batch, dtype=np.float32)).reshape(-1)
        keep = a.view(np.int32) != 0  # after abs, a zero is +0.0: all bits clear
        zeros = a.size - np.count_nonzero(keep)
        if not zeros:
            return a
        if 0.1 * a.size < zeros < 0.9 * a.size:  # mixed: a boolean mask's selection mispredicts branches
            return a.take(np.flatnonzero(keep))
        return a[keep]

    def merge(self, other: HistogramCalibratorMixin) -> None:
        """Merge another shard's statistics of the same pass."""
        self.hist.merge(other.hist)

    @property
    def absmax(self) -> float:
        """Largest ``|x|`` seen."""
        return float(self.hist.absmax)
