"""``percentile``: a percentile of the nonzero |x|."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.core.calibration import NcnncError, find_calibrator
from ncnnc.plugins.calibrators.percentile import PercentileCalibrator


def _run(cal: PercentileCalibrator, batches: list[np.ndarray]) -> PercentileCalibrator:
    return cal.observe_all(batches)


def test_gaussian_percentile():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 50_000)).astype(np.float32)
    cal = _run(PercentileCalibrator(99.0), [x])
    assert cal.threshold() == pytest.approx(2.5758, rel=0.01)  # 99% of |N(0,1)| lies below 2.5758
    assert cal.threshold() == pytest.approx(float(np.quantile(np.abs(x), 0.99)), rel=1e-3)


def test_zeros_are_ignored_and_100_is_absmax():
    x = np.concatenate([np.zeros(900), np.linspace(0.01, 1.0, 100)]).astype(np.float32)[None]
    assert _run(PercentileCalibrator(50.0), [x]).threshold() == pytest.approx(0.5, abs=0.01)
    assert _run(PercentileCalibrator(100.0), [x]).threshold() == pytest.approx(1.0)


def test_merge_equals_single_pass():
    rng = np.random.default_rng(2)
    batches = [rng.laplace(size=(4, 1000)).astype(np.float32) for _ in range(3)]
    whole = _run(PercentileCalibrator(99.9), batches)
    a, b = PercentileCalibrator(99.9), PercentileCalibrator(99.9)
    a.observe(batches[0])
    b.observe(batches[1])
    b.observe(batches[2])
    a.merge(b)
    a.next_pass()
    c = PercentileCalibrator(99.9)
    c.hist.absmax = a.hist.absmax
    c.next_pass()
    a.observe(batches[0])
    for x in batches[1:]:
        c.observe(x)
    a.merge(c)
    assert a.threshold() == whole.threshold()


def test_parameter_is_parsed_and_checked():
    factory = find_calibrator("percentile")
    assert factory.make({"percentile": "99.5"}).percentile == 99.5
    with pytest.raises(NcnncError, match="not a valid float"):
        factory.make({"percentile": "high"})
    with pytest.raises(NcnncError, match="no parameter"):
        factory.make({"p": 1})
    with pytest.raises(ValueError):
        PercentileCalibrator(0)
