"""``minmax``: the threshold is the largest ``|x|`` seen (no clipping)."""

from __future__ import annotations

import numpy as np

from ncnnc.core.calibration import Calibrator, CalibratorFactory
from ncnnc.core.hookspecs import hookimpl


class MinMaxCalibrator(Calibrator):
    """Keeps the running absmax; merging takes the larger one."""

    def __init__(self) -> None:
        self._absmax = np.float32(0)

    def observe(self, batch: np.ndarray) -> None:
        """Update the absmax with the batch's."""
        a = np.asarray(batch, dtype=np.float32)
        if a.size:
            m = np.float32(max(a.max(), -a.min()))
            if not np.isfinite(m):
                raise ValueError("activation is not finite (inf or NaN)")
            self._absmax = max(self._absmax, m)

    def merge(self, other: MinMaxCalibrator) -> None:
        """The larger absmax."""
        self._absmax = max(self._absmax, other._absmax)

    @property
    def absmax(self) -> float:
        """Largest ``|x|`` seen."""
        return float(self._absmax)

    def threshold(self) -> float:
        """The absmax."""
        return float(self._absmax)


@hookimpl
def ncnnc_calibrators() -> list[CalibratorFactory]:
    """The ``minmax`` calibrator."""
    return [CalibratorFactory(name="minmax", description="threshold = largest |x| seen (no clipping)",
                              create=MinMaxCalibrator)]
