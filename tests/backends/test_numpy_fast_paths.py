"""The numpy backend's fast paths give exactly (bit for bit) what their plain formulas give:
im2col without materialised padding, separable max pooling, clamping with broadcast rows, and BLAS
on one thread while the interpreter runs."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.numpy import Interpreter
from ncnnc.backends.numpy.blas import blas_threads, single_thread
from ncnnc.backends.numpy.common import clamp
from ncnnc.backends.numpy.conv_ops import Im2col, pad_hw, windows
from ncnnc.backends.numpy.pool_ops import FLT_MAX, max_pool
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import NcnncError

SPECIAL = np.array([np.nan, -0.0, 0.0, -np.inf, np.inf, -FLT_MAX], np.float32)


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of a float32 array (so -0.0, 0.0 and NaNs are told apart)."""
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def with_specials(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, 4)] = rng.choice(SPECIAL[1:], 4)
    return x


@pytest.mark.parametrize("seed", range(6))
def test_im2col_equals_padded_windows(seed):
    rng = np.random.default_rng(seed)
    c, h, w = rng.integers(1, 4), rng.integers(1, 9), rng.integers(1, 9)
    kh, kw, dh, dw, sh, sw = (int(v) for v in rng.integers(1, 4, 6))
    pads = tuple(int(v) for v in rng.integers(0, 4, 4))
    value = float(rng.choice([0.0, -1.5]))
    x = with_specials(rng, (c, h, w))
    xp = pad_hw(x, *pads, value)
    oh, ow = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1, (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        pytest.skip("window larger than the input")
    cols = Im2col((c, h, w), kh, kw, dh, dw, sh, sw, oh, ow, pads, value, np.float32)
    for image in (x, with_specials(rng, (c, h, w))):  # the buffer is reused: borders must stay
        expected = np.stack(windows(pad_hw(image, *pads, value), kh, kw, dh, dw, sh, sw, oh, ow), axis=1)
        np.testing.assert_array_equal(bits(cols.gather(image)), bits(expected))


@pytest.mark.parametrize("seed", range(8))
def test_max_pool_equals_max_over_padded_windows(seed):
    rng = np.random.default_rng(100 + seed)
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    kh, kw, sh, sw = (int(v) for v in rng.integers(1, 4, 4))
    pads = tuple(int(v) for v in rng.integers(0, 4, 4))
    x = with_specials(rng, (2, 3, h, w))
    xp = pad_hw(x, *pads, -FLT_MAX)
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    if oh <= 0 or ow <= 0:
        with pytest.raises(ValueError):
            max_pool(x, kh, kw, sh, sw, pads)
        return
    taps = windows(xp, kh, kw, 1, 1, sh, sw, oh, ow)
    expected = np.maximum.reduce(taps)
    np.testing.assert_array_equal(max_pool(x, kh, kw, sh, sw, pads), expected)


def test_max_pool_window_of_padding_only_and_minus_infinity():
    x = np.full((1, 1, 2, 2), -np.inf, np.float32)
    out = max_pool(x, 2, 2, 2, 2, (0, 2, 0, 2))  # the last window lies in the padding only
    np.testing.assert_array_equal(out[0, 0], [[-np.inf, -FLT_MAX], [-FLT_MAX, -FLT_MAX]])


@pytest.mark.parametrize("shape", [(5,), (2, 7), (3, 4, 5, 6), (2, 16, 40, 40), (0, 3)])
@pytest.mark.parametrize(("low", "high"), [(0.0, None), (-0.5, 0.7), (None, 1.3)])
def test_clamp_is_clip(shape, low, high):
    rng = np.random.default_rng(1)
    x = with_specials(rng, shape) if shape[0] else np.zeros(shape, np.float32)
    if x.size:
        x.reshape(-1)[0] = np.nan
    f32 = [None if v is None else np.float32(v) for v in (low, high)]
    for view in (x, x[..., ::2]):
        expected = np.clip(view, *f32)
        np.testing.assert_array_equal(bits(clamp(view, low, high)), bits(expected))
        copy = view.copy()
        assert clamp(copy, low, high, inplace=True) is copy
        np.testing.assert_array_equal(bits(copy), bits(expected))


def test_interpreter_runs_blas_on_one_thread():
    before = blas_threads()
    if before is None:
        pytest.skip("no controllable OpenBLAS in this numpy")
    seen = []
    b = GraphBuilder()
    x = b.input("data", (2, 4, 4))
    b.layer("ReLU", [x])
    with single_thread():
        assert blas_threads() == 1
        with single_thread():
            assert blas_threads() == 1
        assert blas_threads() == 1
    assert blas_threads() == before
    Interpreter(b.build()).run({"data": np.ones((1, 2, 4, 4), np.float32)},
                               observe=lambda name, a: seen.append(blas_threads()))
    assert seen and set(seen) == {1}
    assert blas_threads() == before


def _fire(b: GraphBuilder, x: str, rng: np.random.Generator, c_in: int, sizes: tuple[int, int]) -> list[str]:
    """Two convolutions of one input (1x1 and 3x3 padded), as a fire module's expand layers."""
    outs = []
    for n, k in zip(sizes, (1, 3)):
        params = {"num_output": n, "kernel_w": k, "kernel_h": k, "pad_left": k // 2, "pad_right": k // 2,
                  "pad_top": k // 2, "pad_bottom": k // 2, "bias_term": 1, "weight_data_size": n * c_in * k * k,
                  "activation_type": 1}
        outs.append(b.layer("Convolution", [x], params, {"weight": rng.standard_normal(n * c_in * k * k),
                                                          "bias": rng.standard_normal(n)}))
    return outs


def test_convolutions_write_into_their_concat():
    rng = np.random.default_rng(5)
    b = GraphBuilder()
    x = b.input("data", (3, 6, 7))
    left, right = _fire(b, x, rng, 3, (4, 5))
    cat = b.layer("Concat", [left, right], {"axis": 0})
    out = b.layer("ReLU", [cat], {0: 0.1})
    graph = b.build()
    interp = Interpreter(graph)
    assert set(interp.concats.slots) == {left, right}
    data = rng.standard_normal((3, 3, 6, 7)).astype(np.float32)
    seen = {}
    got = interp.run({"data": data}, [left, right, cat, out], observe=lambda n, a: seen.setdefault(n, a.copy()),
                     keep=[left, right, cat, out])
    plain = Interpreter(graph)
    plain.concats.offsets.clear()
    expected = plain.run({"data": data}, [left, right, cat, out])
    for name in (left, right, cat, out):
        np.testing.assert_array_equal(bits(got[name]), bits(expected[name]))
        np.testing.assert_array_equal(bits(seen[name]), bits(expected[name]))
    assert np.shares_memory(got[left], got[cat])
    # a concat input fed by the caller: the plain path
    fed = interp.run({"data": data, left: expected[left]}, [cat])
    np.testing.assert_array_equal(fed[cat], expected[cat])


def test_concat_of_other_sizes_still_fails_as_before():
    rng = np.random.default_rng(6)
    b = GraphBuilder()
    x = b.input("data", (2, 6, 6))
    left = _fire(b, x, rng, 2, (3, 3))[0]
    params = {"num_output": 2, "kernel_w": 3, "kernel_h": 3, "bias_term": 0, "weight_data_size": 2 * 2 * 9}
    smaller = b.layer("Convolution", [x], params, {"weight": rng.standard_normal(2 * 2 * 9)})
    b.layer("Concat", [left, smaller], {"axis": 0})
    interp = Interpreter(b.build())
    with pytest.raises(NcnncError, match="Concat cannot run"):
        interp.run({"data": np.ones((1, 2, 6, 6), np.float32)})
