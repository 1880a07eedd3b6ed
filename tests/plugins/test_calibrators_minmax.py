"""``minmax``: threshold = absmax."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.plugins.calibrators.minmax import MinMaxCalibrator


def test_threshold_is_absmax_and_merges():
    a, b = MinMaxCalibrator(), MinMaxCalibrator()
    a.observe(np.array([[0.5, -3.0]], np.float32))
    b.observe(np.array([[2.0, 1.0]], np.float32))
    a.merge(b)
    assert a.threshold() == a.absmax == 3.0
    assert a.scale() == pytest.approx(127 / 3.0)


def test_empty_blob_gets_a_finite_scale():
    cal = MinMaxCalibrator()
    cal.observe(np.zeros((2, 3), np.float32))
    assert cal.scale() == 1.0
