"""Interp: nearest, bilinear and bicubic resizing with ncnn's coordinate rules."""

from __future__ import annotations

import math

import numpy as np

from ncnnc.backends.numpy.registry import Op, register_op

f32 = np.float32


def _source_coord(dx: int, scale: float, align_corner: bool) -> float:
    return float(f32(dx * scale)) if align_corner else float(f32((dx + 0.5) * scale - 0.5))


def _coord_scale(w: int, outw: int, align_corner: bool, scale: float) -> float:
    if align_corner:
        return (w - 1) / (outw - 1) if outw > 1 else 0.0
    return scale


def linear_coeffs(w: int, outw: int, align_corner: bool, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Left source index and the two weights of each output position (ncnn's ``linear_coeffs``);
    ``scale`` is input/output: ``w / outw`` for a target size, ``1 / scale`` for a scale factor."""
    scale = _coord_scale(w, outw, align_corner, scale)
    idx = np.empty(outw, np.int64)
    alpha = np.empty((outw, 2), f32)
    for dx in range(outw):
        fx = _source_coord(dx, scale, align_corner)
        sx = math.floor(fx)
        fx = f32(fx - sx)
        if sx < 0:
            sx, fx = 0, f32(0)
        if sx >= w - 1:
            sx, fx = w - 2, f32(1)
        idx[dx] = sx
        alpha[dx] = (f32(1) - fx, fx)
    return idx, alpha


def _cubic_weights(fx: float) -> list:
    a = f32(-0.75)
    fx0, fx1, fx2 = f32(fx + 1), f32(fx), f32(1 - fx)
    c0 = a * fx0 * fx0 * fx0 - 5 * a * fx0 * fx0 + 8 * a * fx0 - 4 * a
    c1 = (a + 2) * fx1 * fx1 * fx1 - (a + 3) * fx1 * fx1 + 1
    c2 = (a + 2) * fx2 * fx2 * fx2 - (a + 3) * fx2 * fx2 + 1
    return [c0, c1, c2, f32(1) - c0 - c1 - c2]


def cubic_coeffs(w: int, outw: int, align_corner: bool, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Second source index and the four weights of each output position (ncnn's ``cubic_coeffs``)."""
    scale = _coord_scale(w, outw, align_corner, scale)
    idx = np.empty(outw, np.int64)
    alpha = np.empty((outw, 4), f32)
    for dx in range(outw):
        fx = _source_coord(dx, scale, align_corner)
        sx = math.floor(fx)
        a = _cubic_weights(f32(fx - sx))
        if sx <= -1:
            sx, a = 1, [f32(1) - a[3], a[3], f32(0), f32(0)]
        if sx == 0:
            sx, a = 1, [a[0] + a[1], a[2], a[3], f32(0)]
        if sx == w - 2:
            sx, a = w - 3, [f32(0), a[0], a[1], a[2] + a[3]]
        if sx >= w - 1:
            sx, a = w - 3, [f32(0), f32(0), a[0], f32(1) - a[0]]
        idx[dx] = sx
        alpha[dx] = a
    return idx, alpha


def _resize_axis(x: np.ndarray, axis: int, n_out: int, mode: int, align_corner: bool,
                 scale: float) -> np.ndarray:
    n_in = x.shape[axis]
    if mode == 1:
        src = np.minimum((np.arange(n_out) * f32(scale)).astype(np.int64), n_in - 1)
        return np.take(x, src, axis=axis)
    if mode == 2:
        idx, alpha = linear_coeffs(n_in, n_out, align_corner, scale)
        shape = [1] * x.ndim
        shape[axis] = n_out
        return (np.take(x, idx, axis=axis) * alpha[:, 0].reshape(shape)
                + np.take(x, idx + 1, axis=axis) * alpha[:, 1].reshape(shape))
    idx, alpha = cubic_coeffs(n_in, n_out, align_corner, scale)
    shape = [1] * x.ndim
    shape[axis] = n_out
    out = np.take(x, idx - 1, axis=axis) * alpha[:, 0].reshape(shape)
    for k in range(1, 4):
        out += np.take(x, idx - 1 + k, axis=axis) * alpha[:, k].reshape(shape)
    return out


@register_op("Interp")
class Interp(Op):
    """Resize h/w by ``1=/2=`` scales or to ``3=/4=`` sizes (or a reference blob's, ``5=1``);
    ``0=resize_type`` 1 nearest, 2 bilinear, 3 bicubic; ``6=align_corner``."""

    def run(self, x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
        """``x`` resized over its h/w axes (to ``ref``'s h/w when it is given and ``5=1``)."""
        p = self.p
        mode, align = p["resize_type"], bool(p["align_corner"])
        if mode not in (1, 2, 3):
            raise self.unsupported(f"resize_type {mode}")
        hs, ws = p["height_scale"], p["width_scale"]
        oh, ow = p["output_height"], p["output_width"]
        if ref is not None and p["dynamic_target_size"]:
            oh, ow = ref.shape[-2], ref.shape[-1]
        dims = x.ndim - 1
        if dims == 1:
            h = w = 1
            if oh == 0 or ow == 0:
                oh, ow = int(h * hs), int(w * ws)
            return np.broadcast_to(x[:, :, None, None], (*x.shape, oh, ow)).copy()
        h, w = x.shape[-2:]
        if dims == 2:
            ow = ow if ow else int(w * ws)
            if ow == w:
                return x
            return _resize_axis(x, x.ndim - 1, ow, mode, align, w / ow if p["output_width"] else 1 / ws)
        if oh == 0 or ow == 0:
            oh, ow = int(h * f32(hs)), int(w * f32(ws))
        if (oh, ow) == (h, w):
            return x
        by_size = bool(p["output_height"] and p["output_width"]) or ref is not None
        hsc = h / oh if by_size else 1 / f32(hs)
        wsc = w / ow if by_size else 1 / f32(ws)
        y = _resize_axis(x, x.ndim - 1, ow, mode, align, wsc)
        return _resize_axis(y, x.ndim - 2, oh, mode, align, hsc)
