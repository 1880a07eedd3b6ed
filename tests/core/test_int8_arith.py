"""ncnn's int8 arithmetic helpers (``ncnnc.core.int8``)."""

from __future__ import annotations

import math

import numpy as np

from ncnnc.core.int8 import fma32


def test_fma32_rounds_the_exact_value_once():
    """1 + 2^-23 + (2^-24 - 2^-70): float64 rounds the sum onto the float32 tie 1 + 2^-23 + 2^-24, which
    ties-to-even would round up; the exact value lies below the tie, so a fused multiply-add rounds down."""
    a, s, c = np.float32(1 + 2**-23), np.float32(2**-24 * (1 - 2**-23)), np.float32(1 + 2**-23)
    assert float(a) * float(s) == 2**-24 - 2**-70
    assert np.float32(float(a) * float(s) + float(c)) != c  # the float64 path double-rounds
    assert fma32(np.array([a]), np.array([s]), np.array([c]))[0] == c
    assert fma32(np.array([-a]), np.array([s]), np.array([-c]))[0] == -c


def test_fma32_is_the_nearest_float32_on_random_values():
    rng = np.random.default_rng(0)
    a = rng.integers(-2**20, 2**20, 2000).astype(np.float32)
    s = rng.uniform(1e-5, 1e-2, 2000).astype(np.float32)
    c = rng.normal(0, 1, 2000).astype(np.float32)
    got = fma32(a, s, c)
    for x, y, z, r in zip(a, s, c, got):
        exact = math.fsum([float(x) * float(y), float(z)])  # the product is exact in float64
        below, above = np.nextafter(r, np.float32(-np.inf)), np.nextafter(r, np.float32(np.inf))
        assert abs(float(r) - exact) <= min(abs(float(below) - exact), abs(float(above) - exact))
    np.testing.assert_array_equal(fma32(a, s), (a.astype(np.float64) * s).astype(np.float32))
