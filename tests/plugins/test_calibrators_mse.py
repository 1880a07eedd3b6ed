"""``mse``: the threshold minimising the squared int8 error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncnnc.plugins.calibrators.mse import MSECalibrator, mse_errors


def _int8_error(x: np.ndarray, threshold: float) -> float:
    step = threshold / 127
    q = np.clip(np.trunc(x / step + np.copysign(0.5, x)), -127, 127) * step
    return float(((x - q) ** 2).sum())


def _run(x: np.ndarray) -> MSECalibrator:
    return MSECalibrator().observe_all([x])


def test_error_model_matches_brute_force():
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(400_000)).astype(np.float32)
    cal = _run(x[None])
    absmax = float(cal.hist.absmax)
    for t in (64, 300, 900, 2048):
        model = mse_errors(cal.hist.counts.astype(np.float64), absmax, np.array([t]))[0]
        assert model == pytest.approx(_int8_error(x.astype(np.float64), t * absmax / 2048), rel=0.03)


def test_gaussian_optimum():
    """The optimum of E(a) = clip error + (a/127)^2/12 for N(0,1)."""
    def expected(alpha: float) -> float:
        clip = (alpha ** 2 + 1) * (1 - math.erf(alpha / math.sqrt(2))) \
            - math.sqrt(2 / math.pi) * alpha * math.exp(-alpha ** 2 / 2)
        return clip + (alpha / 127) ** 2 / 12

    grid = np.linspace(2, 8, 6001)
    best = grid[np.argmin([expected(a) for a in grid])]
    rng = np.random.default_rng(1)
    cal = _run(rng.standard_normal((40, 100_000)).astype(np.float32))
    assert cal.threshold() == pytest.approx(best, rel=0.05)
    assert cal.threshold() < cal.absmax


def test_merge_is_exact():
    rng = np.random.default_rng(2)
    x = rng.laplace(size=(2, 5000)).astype(np.float32)
    whole = _run(x)
    a, b = MSECalibrator(), MSECalibrator()
    a.observe(x[:1])
    b.observe(x[1:])
    a.merge(b)
    a.next_pass()
    c = MSECalibrator()
    c.hist.absmax = a.hist.absmax
    c.next_pass()
    a.observe(x[:1])
    c.observe(x[1:])
    a.merge(c)
    assert a.threshold() == whole.threshold()


@pytest.mark.parametrize("kind", ["gaussian", "relu", "laplace"])
def test_coarse_to_fine_finds_the_full_sweeps_minimum(kind):
    rng = np.random.default_rng(3)
    x = {"gaussian": rng.standard_normal(200_000), "laplace": rng.laplace(size=200_000),
         "relu": np.maximum(rng.standard_normal(200_000) * 2 + 0.3, 0)}[kind].astype(np.float32)
    cal = _run(x[None])
    candidates = np.arange(16, 2049)
    errors = mse_errors(cal.hist.counts.astype(np.float64), cal.absmax, candidates)
    assert cal.threshold() == pytest.approx(candidates[np.argmin(errors)] * cal.absmax / 2048, rel=1e-12)
