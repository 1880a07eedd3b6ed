"""Pooling (max / average; global, adaptive, and windowed with ncnn's pad modes)."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.common import as_image
from ncnnc.backends.numpy.conv_ops import _in_bounds, check_output_size, crop_negative, half, pad_hw, windows
from ncnnc.backends.numpy.registry import Op, register_op

FLT_MAX = np.float32(3.4028234663852886e38)


def pooling_pads(p, h: int, w: int, flat: bool) -> tuple[tuple[int, int, int, int], tuple[int, int]] | None:
    """A windowed Pooling's padding ``(top, bottom, left, right)`` for its ``5=pad_mode`` on an ``h x w``
    input, and the ``(h, w)`` tail that full padding (mode 0) adds beyond the pad params (the average's
    count region leaves it out); None for an unknown pad mode.  A 1-D blob is padded along w only."""
    kw, kh, sw, sh = p["kernel_w"], p["kernel_h"], p["stride_w"], p["stride_h"]
    left, right, top, bottom = p["pad_left"], p["pad_right"], p["pad_top"], p["pad_bottom"]
    mode = p["pad_mode"]
    wtail = htail = 0
    if mode == 0:
        rw, rh = (w + left + right - kw) % sw, (h + top + bottom - kh) % sh
        wtail, htail = (sw - rw if rw else 0), (sh - rh if rh else 0)
        pads = (top, bottom + htail, left, right + wtail)
    elif mode == 1:
        pads = (top, bottom, left, right)
    elif mode in (2, 3):
        wpad, hpad = kw + (w - 1) // sw * sw - w, kh + (h - 1) // sh * sh - h
        if wpad <= 0 and hpad <= 0:
            pads = (0, 0, 0, 0)
        elif mode == 2:
            pads = (half(hpad), hpad - half(hpad), half(wpad), wpad - half(wpad))
        else:
            pads = (hpad - half(hpad), half(hpad), wpad - half(wpad), half(wpad))
    else:
        return None
    if flat:
        pads = (0, 0, *pads[2:])
    return pads, (htail, wtail)


@register_op("Pooling")
class Pooling(Op):
    """ncnn Pooling: ``0=`` type (0 max, 1 avg), ``4=`` global, ``5=`` pad_mode (0 full, 1 valid,
    2 SAME_UPPER, 3 SAME_LOWER), ``6=`` avgpool_count_include_pad, ``7=`` adaptive with ``8=/18=``.

    A 1-D or 2-D blob is pooled as a one-channel image (``(1, 1, w)`` / ``(1, h, w)``), so its result is
    3-D, or ``(1,)`` for global pooling.  ncnn pads a 1-D blob along w only (its window must be one row
    high), while the average's pad_top/pad_bottom bounds still apply.  A window lying entirely in the
    padding gives ``-FLT_MAX`` (max) and, without ``avgpool_count_include_pad``, ``0 / 0 = NaN``
    (average).  All of this as in the runtime.
    """

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, C, H, W) -> (N, C, OH, OW)``, or ``(N, C)`` for global pooling."""
        if x.ndim > 4:  # the runtime pools only the first depth slice of each channel: use Pooling3D
            raise self.unsupported("on a 4-D blob")
        flat = x.ndim == 2
        x = as_image(x)
        p = self.p
        is_max = p["pooling_type"] == 0
        if p["pooling_type"] not in (0, 1):
            raise self.unsupported(f"pooling_type {p['pooling_type']}")
        if p["global_pooling"]:
            return x.max(axis=(2, 3)) if is_max else x.mean(axis=(2, 3), dtype=np.float32)
        if p["adaptive_pooling"]:
            return self._adaptive(x, is_max)
        return self._windowed(x, is_max, flat)

    def _adaptive(self, x: np.ndarray, is_max: bool) -> np.ndarray:
        n, c, h, w = x.shape
        out_w = w if self.p["out_w"] == -233 else self.p["out_w"]
        out_h = h if self.p["out_h"] == -233 else self.p["out_h"]
        if (out_w, out_h) == (w, h):
            return x
        out = np.empty((n, c, out_h, out_w), np.float32)
        for i in range(out_h):
            y0, y1 = h * i // out_h, (h * (i + 1) + out_h - 1) // out_h
            for j in range(out_w):
                x0, x1 = w * j // out_w, (w * (j + 1) + out_w - 1) // out_w
                region = x[:, :, y0:y1, x0:x1]
                out[:, :, i, j] = region.max(axis=(2, 3)) if is_max else \
                    region.sum(axis=(2, 3), dtype=np.float32) / np.float32((y1 - y0) * (x1 - x0))
        return out

    def _windowed(self, x: np.ndarray, is_max: bool, flat: bool) -> np.ndarray:
        p = self.p
        kw, kh, sw, sh = p["kernel_w"], p["kernel_h"], p["stride_w"], p["stride_h"]
        if flat and kh > 1:
            raise self.unsupported(f"with a window {kh} rows high on a 1-D blob")
        left, right, top, bottom = p["pad_left"], p["pad_right"], p["pad_top"], p["pad_bottom"]
        h, w = x.shape[2:]
        found = pooling_pads(p, h, w, flat)
        if found is None:
            raise self.unsupported(f"pad_mode {p['pad_mode']}")
        pads, (htail, wtail) = found
        if is_max:
            return max_pool(x, kh, kw, sh, sw, pads)
        xb = pad_hw(x, *pads, value=0.0)
        hb, wb = xb.shape[2:]
        oh, ow = (hb - kh) // sh + 1, (wb - kw) // sw + 1
        area = None
        if not is_max and not p["avgpool_count_include_pad"]:
            # ncnn sums and counts only the positions inside [pad_top, h - pad_bottom - tail) x [...],
            # with the pad_* params (not the SAME amounts) and the tail of full padding
            mask = np.zeros((hb, wb), np.float32)
            mask[top: hb - bottom - htail, left: wb - right - wtail] = 1.0
            xb = xb * mask
            area = sum(windows(mask, kh, kw, 1, 1, sh, sw, oh, ow))
        taps = windows(xb, kh, kw, 1, 1, sh, sw, oh, ow)
        acc = taps[0].copy()
        for t in taps[1:]:
            acc += t
        with np.errstate(invalid="ignore", divide="ignore"):  # a window of padding only: 0/0 as in ncnn
            return acc / (np.float32(kh * kw) if area is None else area)


def max_pool(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Windowed max of ``x (N, C, H, W)`` with ``pads = (top, bottom, left, right)`` of ``-FLT_MAX``.

    Separable and image by image (the maximum of the window's rows, then of their columns), without
    materialising the padding: a window that reaches into it is also compared with ``-FLT_MAX``.
    """
    x, (top, bottom, left, right) = crop_negative(x, *pads)
    n, c, h, w = x.shape
    oh, ow = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    check_output_size(oh, ow)
    out = np.empty((n, c, oh, ow), x.dtype)
    for i in range(n):
        rows = _max_along(x[i], 1, kh, sh, top, oh)
        out[i] = _max_along(rows, 2, kw, sw, left, ow)
    return out


def _max_along(x: np.ndarray, axis: int, k: int, stride: int, pad: int, count: int) -> np.ndarray:
    """``out[o] = max(x[o * stride - pad + t] for t < k)`` along ``axis``, positions outside ``x``
    counting as ``-FLT_MAX``."""
    size = x.shape[axis]
    spans = [_in_bounds(t - pad, stride, count, size) for t in range(k)]

    def at(index: slice) -> tuple[slice, ...]:
        return (slice(None),) * axis + (index,)

    def source(lo: int, hi: int, start: int) -> np.ndarray:
        return x[at(slice(start, start + stride * (hi - lo - 1) + 1, stride))]

    full = next((t for t, (lo, hi, _s) in enumerate(spans) if lo == 0 and hi == count), None)
    # -inf leaves every value as it is; the padding's -FLT_MAX is applied to the edges below
    out = np.full((*x.shape[:axis], count, *x.shape[axis + 1:]), -np.inf, x.dtype) if full is None \
        else source(*spans[full]).copy()
    for t, (lo, hi, start) in enumerate(spans):
        if t != full and hi > lo:
            np.maximum(out[at(slice(lo, hi))], source(lo, hi, start), out=out[at(slice(lo, hi))])
    first = max(lo for lo, _hi, _s in spans)  # windows that reach into the padding also see -FLT_MAX
    stop = max(min(hi for _lo, hi, _s in spans), first)
    for edge in (slice(0, first), slice(stop, count)):
        np.maximum(out[at(edge)], -FLT_MAX, out=out[at(edge)])
    return out
