"""``aciq``: analytical clipping (Banner et al.) as ncnn2table applies it, plus a Laplace variant.

ncnn2table's form (``distribution=gaussian``, the default): the activations are taken as a
Gaussian whose sigma is estimated from the absmax ``M`` of one image's ``N`` values of the blob,
``sigma = 2 c M / sqrt(2 ln N)`` with ``c = 0.175 (1 + sqrt(pi ln 4))``, and clipped at
``alpha_8 sigma`` with ``alpha_8 = 3.92403714`` (the MSE-optimal Gaussian clip for 8 bits).  ``M``
is the absmax over all images; ``N`` is the element count of one image's blob (the largest one,
when images keep their own sizes: ncnn2table takes whichever image came last).  Weights get the
same clip per output channel (``weights="aciq"``).

``distribution=laplace``: ``b`` = mean ``|x|`` over every value seen, clip at ``alpha b`` where
alpha minimises ACIQ's Laplace error ``2 b^2 exp(-alpha/b) + alpha^2 / (3 * 4^bits)``.
"""

from __future__ import annotations

import math

import numpy as np

from ncnnc.core.calibration import (
    Calibrator,
    CalibratorFactory,
    CalibratorParam,
    aciq_gaussian_clip,
)
from ncnnc.core.hookspecs import hookimpl


def laplace_alpha(bits: int) -> float:
    """The clip (in units of b) minimising ``2 exp(-a) + a^2 / (3 * 4^bits)`` (Newton on the derivative)."""
    k = 3.0 * 4.0 ** bits
    a = math.log(k)  # start near the root of a = k exp(-a)
    for _ in range(50):
        f = a - k * math.exp(-a)
        a -= f / (1.0 + k * math.exp(-a))
    return a


class ACIQCalibrator(Calibrator):
    """Absmax, per-image element count, and the exact sum of ``|x|`` (for the Laplace form)."""

    def __init__(self, distribution: str = "gaussian") -> None:
        if distribution not in ("gaussian", "laplace"):
            raise ValueError(f"distribution must be gaussian or laplace, not {distribution!r}")
        self.distribution = distribution
        self._absmax = np.float32(0)
        self.per_image = 0
        self.count = 0
        self.abs_sum = 0  # exact: sum of |x| in units of 2**-149 (every float32 is a multiple)

    def observe(self, batch: np.ndarray) -> None:
        """Update absmax and counts."""
        a = np.abs(np.asarray(batch, dtype=np.float32))
        if not a.size:
            return
        m = np.float32(a.max())
        if not np.isfinite(m):
            raise ValueError("activation is not finite (inf or NaN)")
        self._absmax = max(self._absmax, m)
        self.per_image = max(self.per_image, int(np.prod(a.shape[1:])) if a.ndim > 1 else 1)
        self.count += a.size
        if self.distribution == "laplace":
            self.abs_sum += _exact_sum(a)

    def merge(self, other: ACIQCalibrator) -> None:
        """Max of absmax, sums of counts."""
        self._absmax = max(self._absmax, other._absmax)
        self.per_image = max(self.per_image, other.per_image)
        self.count += other.count
        self.abs_sum += other.abs_sum

    @property
    def absmax(self) -> float:
        """Largest ``|x|`` seen."""
        return float(self._absmax)

    def threshold(self) -> float:
        """ncnn2table's Gaussian clip, or the Laplace clip."""
        if self._absmax == 0:
            return 0.0
        if self.distribution == "gaussian":
            return aciq_gaussian_clip(float(self._absmax), self.per_image)
        b = math.ldexp(self.abs_sum, -149) / self.count
        return float(min(laplace_alpha(8) * b, float(self._absmax)))


def _exact_sum(a: np.ndarray) -> int:
    """The exact sum of nonnegative float32 values, as an integer multiple of 2**-149."""
    mant, exp = np.frexp(a.ravel().astype(np.float64))
    ints = (mant * 2.0 ** 24).astype(np.int64)  # exact: float32 mantissas have 24 bits
    shifts = (exp - 24 + 149).astype(np.int64)
    total = 0
    for s in np.unique(shifts[ints != 0]):
        total += int(ints[shifts == s].sum()) << int(s)
    return total


@hookimpl
def ncnnc_calibrators() -> list[CalibratorFactory]:
    """The ``aciq`` calibrator."""
    return [CalibratorFactory(
        name="aciq", description="analytical clipping (ACIQ) as ncnn2table: Gaussian sigma from absmax",
        create=ACIQCalibrator, weights="aciq",
        params=(CalibratorParam("distribution", "gaussian",
                                "gaussian (ncnn2table's) or laplace (b = mean |x|)"),))]
