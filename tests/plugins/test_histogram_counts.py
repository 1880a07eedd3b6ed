"""The chunked histogram counts exactly what ncnn2table's per-value formula counts,
``min(int(|x| / absmax * bins), bins - 1)`` in float32 with exact zeros skipped."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.plugins.calibrators import histogram
from ncnnc.plugins.calibrators.histogram import RangeHistogram


def formula_counts(x: np.ndarray, absmax: np.float32, bins: int) -> np.ndarray:
    """One value at a time, as ncnn2table's loop (vectorised, same float32 operations)."""
    v = np.abs(x.astype(np.float32)).ravel()
    v = v[v != 0]
    index = np.minimum(((v / absmax) * np.float32(bins)).astype(np.int64), bins - 1)
    return np.bincount(index, minlength=bins)


def edge_values(absmax: np.float32, bins: int) -> np.ndarray:
    """Values on, just below and just above every bin edge, subnormals, and +-absmax."""
    edges = (np.arange(bins + 1, dtype=np.float64) * (float(absmax) / bins)).astype(np.float32)
    near = np.concatenate([edges, np.nextafter(edges, np.float32(0)), np.nextafter(edges, np.float32(np.inf))])
    near = near[near <= absmax]
    tiny = np.array([np.finfo(np.float32).smallest_subnormal, np.finfo(np.float32).tiny, 0.0, -0.0], np.float32)
    return np.concatenate([near, -near, tiny, [absmax, -absmax]]).astype(np.float32)


@pytest.mark.parametrize("bins", [2048, 1000, 8])
@pytest.mark.parametrize("absmax", [np.float32(50.0), np.float32(3.3e-3), np.float32(1e-36), np.float32(1.1e38)])
def test_counts_equal_the_formula(bins, absmax, monkeypatch):
    monkeypatch.setattr(histogram, "_CHUNK", 257)  # several chunks, a ragged last one
    rng = np.random.default_rng(bins)
    x = np.concatenate([edge_values(absmax, bins),
                        (rng.laplace(size=3000) * absmax / 8).astype(np.float32).clip(-absmax, absmax)])
    h = RangeHistogram(bins)
    h.observe(x[None])
    assert h.absmax == absmax
    h.start_counting()
    h.observe(x[None])
    np.testing.assert_array_equal(h.counts, formula_counts(x, absmax, bins))


def test_absmax_pass_sees_both_signs():
    h = RangeHistogram()
    h.observe(np.array([[0.5, -3.0, 2.0]], np.float32))
    h.observe(np.array([[-0.0, 0.0]], np.float32))
    assert h.absmax == np.float32(3.0)


@pytest.mark.parametrize("name", ["kl", "percentile", "mse"])
def test_replay_form_counts_the_same(name):
    """Later passes may see only the nonzero |x| the driver kept: the same histogram and threshold."""
    from ncnnc.core.calibration import find_calibrator

    rng = np.random.default_rng(3)
    base = [rng.laplace(size=(2, 4, 6, 6)).astype(np.float32) for _ in range(4)]
    batches = [np.maximum(base[0], -0.5), np.maximum(base[1], 0), np.where(base[2] > 2.5, base[2], -0.0), base[3]]
    batches[0][0, 0, :2] = 0.0  # few zeros, about half, nearly all, none
    raw, kept = (find_calibrator(name).make() for _ in range(2))
    forms = []
    for b in batches:
        raw.observe(b)
        kept.observe(b)
        forms.append(kept.replay_form(b))
    assert all(f.ndim == 1 and (f > 0).all() for f in forms)
    raw.next_pass()
    kept.next_pass()
    for b, f in zip(batches, forms):
        raw.observe(b)
        kept.observe(f)
    np.testing.assert_array_equal(kept.hist.counts, raw.hist.counts)
    assert kept.threshold() == raw.threshold()
