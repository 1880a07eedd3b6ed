"""``aciq``: ncnn2table's Gaussian clip (and a Laplace variant) against ACIQ's analytic optimum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncnnc.core.calibration import ALPHA_GAUSSIAN, aciq_gaussian_clip, find_calibrator
from ncnnc.plugins.calibrators.aciq import ACIQCalibrator, laplace_alpha


def _argmin(f, lo: float, hi: float) -> float:
    """Golden-section minimum of a unimodal function."""
    g = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        lo, hi = (lo, b) if f(a) < f(b) else (a, hi)
    return (lo + hi) / 2


def _gaussian_error(alpha: float, bits: int) -> float:
    """ACIQ's expected squared error of clipping N(0, 1) at alpha with 2**bits levels."""
    clip = (alpha ** 2 + 1) * (1 - math.erf(alpha / math.sqrt(2))) \
        - math.sqrt(2 / math.pi) * alpha * math.exp(-alpha ** 2 / 2)
    return clip + alpha ** 2 / (3 * 4 ** bits)


@pytest.mark.parametrize("bits", range(2, 9))
def test_gaussian_alphas_are_the_analytic_optimum(bits):
    assert ALPHA_GAUSSIAN[bits - 1] == pytest.approx(_argmin(lambda a: _gaussian_error(a, bits), 0.1, 10), abs=1e-5)


@pytest.mark.parametrize(("bits", "published"), [(2, 2.83), (3, 3.89), (4, 5.03), (8, 9.89)])
def test_laplace_alpha_matches_acIQ_paper(bits, published):
    assert laplace_alpha(bits) == pytest.approx(published, abs=0.01)


def test_ncnn_formula():
    c = 0.175 * (1 + math.sqrt(math.pi * math.log(4)))
    sigma = 10.0 * 2 * c / math.sqrt(2 * math.log(1000))
    assert aciq_gaussian_clip(10.0, 1000) == pytest.approx(3.92403714 * sigma, rel=1e-7)
    assert aciq_gaussian_clip(10.0, 1000, bits=6) == pytest.approx(3.28691474 * sigma, rel=1e-7)


def test_gaussian_threshold_of_gaussian_data():
    """On one image, ncnn's sigma-from-absmax estimate recovers sigma: threshold ~ 3.924 sigma
    (averaged over images: the max of N samples scatters by several percent)."""
    rng = np.random.default_rng(3)
    sigma = 2.5
    thresholds = []
    for _ in range(8):
        cal = ACIQCalibrator()
        cal.observe(rng.normal(0, sigma, size=(1, 16, 64, 64)).astype(np.float32))
        thresholds.append(cal.threshold())
    assert cal.per_image == 16 * 64 * 64
    assert np.mean(thresholds) == pytest.approx(3.92403714 * sigma, rel=0.08)


def test_n_is_one_images_element_count():
    """As ncnn2table: absmax over every image, but N of one image (so more images, larger clip)."""
    rng = np.random.default_rng(3)
    cal = ACIQCalibrator()
    for _ in range(3):
        cal.observe(rng.standard_normal((4, 2, 8, 8)).astype(np.float32))
    assert cal.per_image == 128
    assert cal.threshold() == aciq_gaussian_clip(cal.absmax, 128)


def test_laplace_threshold_of_laplace_data():
    rng = np.random.default_rng(4)
    b = 0.7
    cal = ACIQCalibrator("laplace")
    x = rng.laplace(0, b, size=(16, 5000)).astype(np.float32)
    cal.observe(x)
    assert cal.threshold() == pytest.approx(laplace_alpha(8) * b, rel=0.02)
    assert cal.threshold() == pytest.approx(laplace_alpha(8) * float(np.abs(x.astype(np.float64)).mean()),
                                            rel=1e-9)


@pytest.mark.parametrize("distribution", ["gaussian", "laplace"])
def test_merge_equals_single_pass(distribution):
    rng = np.random.default_rng(5)
    batches = [rng.laplace(size=(3, 4, 6, 6)).astype(np.float32) for _ in range(5)]
    whole = ACIQCalibrator(distribution)
    for x in batches:
        whole.observe(x)
    a, b = ACIQCalibrator(distribution), ACIQCalibrator(distribution)
    for x in batches[:2]:
        a.observe(x)
    for x in batches[2:]:
        b.observe(x)
    b.merge(a)  # order does not matter either
    assert b.threshold() == whole.threshold()
    assert b.abs_sum == whole.abs_sum


def test_factory_parameter():
    factory = find_calibrator("aciq")
    assert factory.weights == "aciq"
    assert factory.make({"distribution": "laplace"}).distribution == "laplace"
    with pytest.raises(ValueError):
        ACIQCalibrator("cauchy")
