"""ROI pooling as ncnn computes it: ROIPooling (max) and PSROIPooling (position-sensitive average).

Both pool the *first* roi of their second input (ncnn's R-CNN examples run one roi per extraction);
roi coordinates are in image pixels and scaled by ``spatial_scale``.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.detection_ops import per_sample
from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.shapes_extra import float_value

F = np.float32


def c_round(x: float) -> float:
    """C's round(): halves away from zero."""
    return float(np.sign(x) * np.floor(abs(x) + 0.5))


def _first_roi(rois: np.ndarray) -> np.ndarray:
    flat = rois.reshape(-1)
    return flat[:4] if flat.size >= 4 else np.zeros(4, F)


def _clamp(v: int, hi: int) -> int:
    return min(max(v, 0), hi)


@register_op("ROIPooling")
class ROIPooling(Op):
    """Max over each of ``pooled_h x pooled_w`` bins of the roi (0 for an empty bin)."""

    def run(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """``(N, c, pooled_h, pooled_w)``."""
        return per_sample(self._one, x, rois)

    def _one(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        c, h, w = x.shape
        pw, ph, scale = self.p["pooled_width"], self.p["pooled_height"], F(float_value(self.p["spatial_scale"]))
        x1, y1, x2, y2 = (int(c_round(F(v) * scale)) for v in _first_roi(rois))
        bin_w = F(max(x2 - x1 + 1, 1)) / F(pw)
        bin_h = F(max(y2 - y1 + 1, 1)) / F(ph)
        out = np.zeros((c, ph, pw), F)
        for i in range(ph):
            hs = _clamp(int(F(y1) + np.floor(F(i) * bin_h)), h)
            he = _clamp(int(F(y1) + np.ceil(F(i + 1) * bin_h)), h)
            for j in range(pw):
                ws = _clamp(int(F(x1) + np.floor(F(j) * bin_w)), w)
                we = _clamp(int(F(x1) + np.ceil(F(j + 1) * bin_w)), w)
                if he > hs and we > ws:
                    out[:, i, j] = x[:, hs:he, ws:we].max(axis=(1, 2))
        return out


@register_op("PSROIPooling")
class PSROIPooling(Op):
    """Average over each bin of the roi, bin (i, j) of output channel q read from input channel
    ``(q * pooled_h + i) * pooled_w + j``."""

    def run(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """``(N, output_dim, pooled_h, pooled_w)``."""
        return per_sample(self._one, x, rois)

    def _one(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        c, h, w = x.shape
        pw, ph, dim = self.p["pooled_width"], self.p["pooled_height"], self.p["output_dim"]
        if c != dim * pw * ph:
            raise self.unsupported(f"on {c} channels (needs output_dim x pooled_h x pooled_w = {dim * pw * ph})")
        scale = F(float_value(self.p["spatial_scale"]))
        r = _first_roi(rois).astype(F)
        x1, y1 = F(c_round(r[0])) * scale, F(c_round(r[1])) * scale
        x2, y2 = F(c_round(r[2] + F(1))) * scale, F(c_round(r[3] + F(1))) * scale
        bin_w = max(x2 - x1, F(0.1)) / F(pw)
        bin_h = max(y2 - y1, F(0.1)) / F(ph)
        grid = x.reshape(dim, ph, pw, h, w)
        out = np.zeros((dim, ph, pw), F)
        for i in range(ph):
            hs = _clamp(int(np.floor(y1 + F(i) * bin_h)), h)
            he = _clamp(int(np.ceil(y1 + F(i + 1) * bin_h)), h)
            for j in range(pw):
                ws = _clamp(int(np.floor(x1 + F(j) * bin_w)), w)
                we = _clamp(int(np.ceil(x1 + F(j + 1) * bin_w)), w)
                if he > hs and we > ws:
                    area = F((he - hs) * (we - ws))
                    out[:, i, j] = grid[:, i, j, hs:he, ws:we].sum(axis=(1, 2), dtype=F) / area
        return out


def _bilinear(channels: np.ndarray, x: float, y: float) -> np.ndarray:
    """ncnn's bilinear_interpolate at (x, y) of every channel: the far neighbour clamped to the edge (at
    exactly the far edge ncnn reads past the map, which ncnnc clamps too)."""
    _, h, w = channels.shape
    x0, y0 = min(int(x), w - 1), min(int(y), h - 1)
    x1, y1 = x0 + 1, y0 + 1
    a0, a1 = F(x1) - F(x), F(x) - F(x0)
    b0, b1 = F(y1) - F(y), F(y) - F(y0)
    if x1 >= w:
        x1, a0, a1 = w - 1, F(1), F(0)
    if y1 >= h:
        y1, b0, b1 = h - 1, F(1), F(0)
    r0 = channels[:, y0, x0] * a0 + channels[:, y0, x1] * a1
    r1 = channels[:, y1, x0] * a0 + channels[:, y1, x1] * a1
    return r0 * b0 + r1 * b1


@register_op("ROIAlign")
class ROIAlign(Op):
    """Average of bilinear samples in each bin of the first roi: ``5=version`` 0 (ncnn's own: bins clipped
    to the map) or 1 (Detectron2's: samples outside dropped), ``4=aligned`` half-pixel offset."""

    def run(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """``(N, c, pooled_h, pooled_w)``."""
        return per_sample(self._one, x, rois)

    def _one(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        c, h, w = x.shape
        p = self.p
        pw, ph, ratio = p["pooled_width"], p["pooled_height"], p["sampling_ratio"]
        x1, y1, x2, y2 = (F(v) * F(float_value(p["spatial_scale"])) for v in _first_roi(rois))
        if p["aligned"]:
            x1, y1, x2, y2 = x1 - F(0.5), y1 - F(0.5), x2 - F(0.5), y2 - F(0.5)
        rw, rh = x2 - x1, y2 - y1
        if not p["aligned"]:
            rw, rh = max(rw, F(1)), max(rh, F(1))
        bw, bh = rw / F(pw), rh / F(ph)
        out = np.zeros((c, ph, pw), F)
        if p["version"] == 1:
            gh = ratio if ratio > 0 else int(np.ceil(rh / F(ph)))
            gw = ratio if ratio > 0 else int(np.ceil(rw / F(pw)))
            count = F(max(gh * gw, 1))
        for i in range(ph):
            for j in range(pw):
                total = np.zeros(c, F)
                if p["version"] == 0:
                    hs, ws = min(max(y1 + F(i) * bh, F(0)), F(h)), min(max(x1 + F(j) * bw, F(0)), F(w))
                    he, we = min(max(y1 + F(i + 1) * bh, F(0)), F(h)), min(max(x1 + F(j + 1) * bw, F(0)), F(w))
                    gh = ratio if ratio > 0 else int(np.ceil(he - hs))
                    gw = ratio if ratio > 0 else int(np.ceil(we - ws))
                    if he <= hs or we <= ws:
                        continue
                    for by in range(gh):
                        yy = hs + (F(by) + F(0.5)) * bh / F(gh)
                        for bx in range(gw):
                            total += _bilinear(x, ws + (F(bx) + F(0.5)) * bw / F(gw), yy)
                    out[:, i, j] = total / F(gh * gw)
                else:
                    for by in range(gh):
                        yy = y1 + F(i) * bh + (F(by) + F(0.5)) * bh / F(gh)
                        for bx in range(gw):
                            xx = x1 + F(j) * bw + (F(bx) + F(0.5)) * bw / F(gw)
                            if yy < -1.0 or yy > h or xx < -1.0 or xx > w:
                                continue
                            total += _bilinear(x, max(xx, F(0)), max(yy, F(0)))
                    out[:, i, j] = total / count
        return out
