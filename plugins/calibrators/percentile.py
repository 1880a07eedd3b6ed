"""``percentile``: the threshold is a percentile of the nonzero ``|x|`` (default 99.99)."""

from __future__ import annotations

from ncnnc.core.calibration import Calibrator, CalibratorFactory, CalibratorParam
from ncnnc.core.hookspecs import hookimpl
from ncnnc.plugins.calibrators.histogram import HistogramCalibratorMixin, RangeHistogram

FINE_BINS = 1 << 16
"""Bins of the histogram the percentile is read from."""


class PercentileCalibrator(HistogramCalibratorMixin, Calibrator):
    """A 65536-bin histogram of the nonzero ``|x|`` over ``[0, absmax]``; the threshold is read off it."""

    def __init__(self, percentile: float = 99.99) -> None:
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], not {percentile}")
        self.percentile = percentile
        self.hist = RangeHistogram(FINE_BINS)

    def threshold(self) -> float:
        """The ``percentile``-th percentile of the nonzero ``|x|`` (linear inside a bin)."""
        return self.hist.quantile(self.percentile / 100.0)


@hookimpl
def ncnnc_calibrators() -> list[CalibratorFactory]:
    """The ``percentile`` calibrator."""
    return [CalibratorFactory(
        name="percentile", description="threshold = a percentile of the nonzero |x|",
        create=PercentileCalibrator,
        params=(CalibratorParam("percentile", 99.99, "the percentile, in (0, 100]"),))]
