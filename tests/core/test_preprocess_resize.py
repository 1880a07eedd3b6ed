"""The vectorised resize equals a literal transcription of ncnn's fixed-point bilinear
(``mat_pixel_resize.cpp``: 11-bit weights, rows into 16-bit intermediates, rounded vertical blend)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncnnc.core.preprocess import resize_bilinear


def _coefficients(src: int, dst: int) -> list[tuple[int, int, int]]:
    """Per destination position: source index and the two weights, one float32 step at a time."""
    f32 = np.float32
    scale = src / dst
    out = []
    for d in range(dst):
        fx = f32((d + 0.5) * scale - 0.5)
        sx = math.floor(fx)
        fx = f32(fx - f32(sx))
        if sx < 0:
            sx, fx = 0, f32(0)
        if sx >= src - 1:
            sx, fx = src - 2, f32(1)
        a0, a1 = (f32(1) - fx) * f32(2048), fx * f32(2048)
        out.append((sx, int(a0 + f32(0.5)), int(a1 + f32(0.5))))
    return out


def literal_resize(pixels: np.ndarray, w: int, h: int) -> np.ndarray:
    """One output value at a time."""
    sh, sw, c = pixels.shape
    xs, ys = _coefficients(sw, w), _coefficients(sh, h)
    src = pixels.astype(np.int64)
    out = np.empty((h, w, c), np.uint8)
    for y, (sy, b0, b1) in enumerate(ys):
        for x, (sx, a0, a1) in enumerate(xs):
            for k in range(c):
                r0 = (int(src[sy, sx, k]) * a0 + int(src[sy, sx + 1, k]) * a1) >> 4
                r1 = (int(src[sy + 1, sx, k]) * a0 + int(src[sy + 1, sx + 1, k]) * a1) >> 4
                out[y, x, k] = (((b0 * r0) >> 16) + ((b1 * r1) >> 16) + 2) >> 2
    return out


@pytest.mark.parametrize("seed", range(8))
def test_resize_equals_the_literal_loops(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(2, 30)), int(rng.integers(2, 30))
    c = int(rng.choice([1, 3, 4]))
    pixels = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    pixels[0, 0], pixels[-1, -1] = 255, 0
    for tw, th in ((int(rng.integers(1, 40)), int(rng.integers(1, 40))), (w * 3, max(h // 2, 1)), (w, h + 1)):
        np.testing.assert_array_equal(resize_bilinear(pixels, tw, th), literal_resize(pixels, tw, th))


def test_same_size_is_untouched_and_repeated_sizes_reuse_the_plan():
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    assert resize_bilinear(pixels, 7, 5) is pixels
    first = resize_bilinear(pixels, 4, 3)
    np.testing.assert_array_equal(resize_bilinear(pixels.copy(), 4, 3), first)
