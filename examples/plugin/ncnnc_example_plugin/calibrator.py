"""``topk``: the threshold is the k-th largest ``|x|`` seen, so the k - 1 largest outliers are clipped."""

from __future__ import annotations

import numpy as np

from ncnnc.core.calibration import Calibrator, CalibratorFactory, CalibratorParam
from ncnnc.core.hookspecs import hookimpl


class TopKCalibrator(Calibrator):
    """Keeps the ``k`` largest ``|x|`` of the blob: an exact, order-independent statistic."""

    def __init__(self, k: int = 100) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        self.k = k
        self.top = np.zeros(0, np.float32)

    def _keep(self, values: np.ndarray) -> None:
        if values.size > self.k:
            values = np.partition(values, values.size - self.k)[-self.k:]
        self.top = np.sort(values)

    def observe(self, batch: np.ndarray) -> None:
        """Add the batch's values to the k largest ``|x|`` seen so far."""
        values = np.abs(np.asarray(batch, np.float32)).ravel()
        self._keep(np.concatenate([self.top, values]))

    def merge(self, other: TopKCalibrator) -> None:
        """The k largest of both (the same set whichever order the images came in)."""
        self._keep(np.concatenate([self.top, other.top]))

    def threshold(self) -> float:
        """The k-th largest ``|x|`` (the smallest seen when there were fewer than k values)."""
        return float(self.top[0]) if self.top.size else 0.0


@hookimpl
def ncnnc_calibrators() -> list[CalibratorFactory]:
    """The ``topk`` calibration method."""
    return [CalibratorFactory("topk", "threshold = the k-th largest |x| (clips k - 1 outliers)", TopKCalibrator,
                              params=(CalibratorParam("k", 100, "how many of the largest |x| to clip, plus one"),))]
