"""``kl``: ncnn2table's entropy calibration, checked against a literal transcription of its loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncnnc.plugins.calibrators.histogram import NCNN_BINS, RangeHistogram
from ncnnc.plugins.calibrators.kl import KLCalibrator, bin_threshold, kl_divergences, kl_threshold_bin

# -- a literal transcription of ncnn2table's KL loops (one threshold at a time, float32) -------------
F = np.float32


def _levels(t: int, target_bin: int):
    """ncnn2table's per-level bounds for bin count t: (left_upper, left_scale, right_lower, right_scale)."""
    per = F(t) / F(target_bin)
    for j in range(target_bin):
        start, end = F(j * per), F((j + 1) * per)
        lu, rl = math.ceil(start), math.floor(end)
        if j == target_bin - 1:
            rl = t
        yield j, lu, F(lu - start) if j > 0 else F(0), rl, F(end - rl) if j < target_bin - 1 else F(0)


def reference_kl_at(hn: np.ndarray, t: int, target_bin: int = 128) -> float:
    """ncnn2table's divergence for bin count t, from the float32 normalised histogram ``hn``."""
    eps = F(0.0001)
    clip = hn[:t] + eps
    clip[t - 1] += hn[t:].sum(dtype=np.float32)
    per = F(t) / F(target_bin)
    q = np.zeros(target_bin, dtype=np.float32)
    expand = np.full(t, eps, dtype=np.float32)
    bounds = list(_levels(t, target_bin))
    for j, lu, ls, rl, rs in bounds:
        acc = hn[lu:rl].sum(dtype=np.float32)
        if ls > 0:
            acc += ls * hn[lu - 1]
        if rs > 0:
            acc += rs * hn[rl]
        q[j] = acc / per
    for j, lu, ls, rl, rs in bounds:
        if ls > 0:
            expand[lu - 1] += ls * q[j]
        if rs > 0:
            expand[rl] += rs * q[j]
        expand[lu:rl] += q[j]
    return float(np.sum(clip * np.log(clip / expand), dtype=np.float32))


def reference_kl(histogram: np.ndarray, target_bin: int = 128) -> tuple[int, np.ndarray]:
    """Best bin count (first minimum) and every candidate's divergence."""
    h = np.asarray(histogram, dtype=np.float64)
    hn = (h / h.sum()).astype(np.float32)
    kls = np.array([reference_kl_at(hn, t, target_bin) for t in range(target_bin, hn.size)])
    return int(np.argmin(kls)) + target_bin, kls


def _ncnn_histogram(values: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """ncnn2table's histogram, element by element as its loop does (float32 index, zeros skipped)."""
    v = np.abs(values.astype(np.float32)).ravel()
    absmax = np.float32(v.max())
    v = v[v != 0]
    index = np.minimum(((v / absmax) * np.float32(NCNN_BINS)).astype(np.int64), NCNN_BINS - 1)
    return np.bincount(index, minlength=NCNN_BINS), absmax


def _calibrate(batches: list[np.ndarray]) -> KLCalibrator:
    return KLCalibrator().observe_all(batches)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_gaussian_threshold_equals_ncnn_loops(rng):
    hist, _ = _ncnn_histogram(rng.standard_normal(300_000))
    best, kls = reference_kl(hist)
    fast = kl_divergences(hist)
    assert kl_threshold_bin(hist) == best
    np.testing.assert_allclose(fast, kls, rtol=2e-4)


@pytest.mark.parametrize("kind", ["laplace", "relu", "spiky"])
def test_divergences_match_ncnn_loops(rng, kind):
    if kind == "laplace":
        x = rng.laplace(size=200_000)
    elif kind == "relu":
        x = np.maximum(rng.standard_normal(200_000) * 3 + 1, 0)
    else:  # integer-valued data, like mean-subtracted pixels
        x = rng.integers(-120, 150, size=100_000).astype(np.float32)
    hist, _ = _ncnn_histogram(x)
    fast = kl_divergences(hist)
    best = kl_threshold_bin(hist)
    hn = (hist / hist.sum()).astype(np.float32)
    for t in sorted({128, 129, 300, 777, 1024, 1500, 2047, best, max(best - 1, 128), min(best + 1, 2047)}):
        assert fast[t - 128] == pytest.approx(reference_kl_at(hn, t), rel=2e-4)


def test_histogram_is_ncnns(rng):
    x = np.concatenate([rng.laplace(size=50_000), np.zeros(1000), [-50.0, 50.0]]).astype(np.float32)
    hist, absmax = _ncnn_histogram(x)
    cal = _calibrate([x[None]])
    assert cal.hist.absmax == absmax == np.float32(50.0)
    np.testing.assert_array_equal(cal.hist.counts, hist)
    assert cal.hist.counts[-1] >= 2  # |x| == absmax lands in the last bin


def test_threshold_and_scale_conventions(rng):
    x = rng.standard_normal((4, 3, 20, 20)).astype(np.float32)
    cal = _calibrate([x])
    hist, absmax = _ncnn_histogram(x)
    t = kl_threshold_bin(hist)
    expected = (np.float32(t + 0.5) * absmax) / np.float32(2048)
    assert cal.threshold() == float(expected) == bin_threshold(t, absmax)
    assert cal.scale() == float(np.float32(127) / np.float32(expected))


def test_merge_equals_single_pass(rng):
    batches = [rng.laplace(size=(2, 8, 10, 10)).astype(np.float32) * s for s in (1.0, 3.0, 0.5, 2.0)]
    whole = _calibrate(batches)
    shards = [KLCalibrator(), KLCalibrator()]
    for cal, part in zip(shards, (batches[:1], batches[1:])):
        for b in part:
            cal.observe(b)
    shards[0].merge(shards[1])
    shards[0].next_pass()
    second = [KLCalibrator(), KLCalibrator()]
    for cal, part in zip(second, (batches[:3], batches[3:])):
        cal.hist.absmax = shards[0].hist.absmax
        cal.next_pass()
        for b in part:
            cal.observe(b)
    second[0].merge(second[1])
    np.testing.assert_array_equal(second[0].hist.counts, whole.hist.counts)
    assert second[0].threshold() == whole.threshold()


def test_pass2_merge_needs_same_absmax():
    a, b = RangeHistogram(), RangeHistogram()
    a.absmax, b.absmax = np.float32(1), np.float32(2)
    a.start_counting()
    b.start_counting()
    with pytest.raises(ValueError):
        a.merge(b)


def test_all_zero_blob_gets_a_finite_scale():
    cal = _calibrate([np.zeros((2, 4, 4), np.float32)])
    assert cal.threshold() == 0.0
    assert cal.scale() == 1.0


def test_non_finite_activation_is_reported():
    cal = KLCalibrator()
    with pytest.raises(ValueError, match="not finite"):
        cal.observe(np.array([[1.0, np.inf]], np.float32))
