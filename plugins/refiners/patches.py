"""The input patches a layer's weights multiply, and their statistics, shared by the refine steps.

Before its activation a Convolution / ConvolutionDepthWise / InnerProduct computes, per output channel,
``w' p`` over input patches ``p`` (``K`` values: ``channels * kernel_h * kernel_w``, or one channel's
``kernel_h * kernel_w`` for depthwise, or the whole flattened input for InnerProduct).  Means and second
moments of the patches over the calibration images give the layer's output error exactly, for any
choice of int8 weights, without running the layer again.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.conv_ops import _pad_amounts, pad_hw, windows
from ncnnc.core.ir import Layer
from ncnnc.core.refine import LayerStep

CHUNK_IMAGES = 8
"""Images whose patches are gathered at once."""


def patch_layout(layer: Layer) -> tuple[int, int] | None:
    """``(groups, rows per group)`` of the weights (one row per output channel), or None for a grouped
    convolution other than depthwise."""
    n = int(layer.p("num_output"))
    if layer.type == "InnerProduct":
        return 1, n
    group = int(layer.p("group")) if layer.type == "ConvolutionDepthWise" else 1
    if group == 1:
        return 1, n
    if group == n and layer.weight("weight").size == n * int(layer.p("kernel_w")) * int(layer.p("kernel_h")):
        return n, 1
    return None


def patches(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The input patches of ``x (N, ...)``: ``(groups, K, positions)``, float32."""
    if layer.type == "InnerProduct":
        return x.reshape(x.shape[0], -1).T[None]
    if x.ndim == 3:
        x = x[:, None]
    kw, kh, dw, dh = (int(layer.p(k)) for k in ("kernel_w", "kernel_h", "dilation_w", "dilation_h"))
    sw, sh = int(layer.p("stride_w")), int(layer.p("stride_h"))
    h, w = x.shape[2:]
    ext_w, ext_h = dw * (kw - 1) + 1, dh * (kh - 1) + 1
    xp = pad_hw(x, *_pad_amounts(layer.params, w, h, ext_w, ext_h, sw, sh))
    oh, ow = (xp.shape[2] - ext_h) // sh + 1, (xp.shape[3] - ext_w) // sw + 1
    taps = np.stack(windows(xp, kh, kw, dh, dw, sh, sw, oh, ow), axis=2)  # (N, C, kh*kw, oh, ow)
    c = taps.shape[1]
    cols = taps.transpose(1, 2, 0, 3, 4)
    groups, _rows = patch_layout(layer) or (1, 0)
    return cols.reshape(1, c * kh * kw, -1) if groups == 1 else cols.reshape(c, kh * kw, -1)


class PatchStats:
    """Means of the quantized-model (``x^``) and fp32 (``x``) patches; with ``moments`` also
    ``A = E[x^ x^']``, ``C = E[x^ x']``, ``F = E[x x']`` (``(groups, K, K)``, float64)."""

    def __init__(self, layer: Layer, xq: np.ndarray, xf: np.ndarray, moments: bool) -> None:
        sums = [None, None]
        prods: list = [None, None, None]
        count = 0
        for start in range(0, xq.shape[0], CHUNK_IMAGES):
            pq = patches(layer, xq[start:start + CHUNK_IMAGES])
            pf = patches(layer, xf[start:start + CHUNK_IMAGES])
            for i, part in enumerate((pq.sum(axis=2, dtype=np.float64), pf.sum(axis=2, dtype=np.float64))):
                sums[i] = part if sums[i] is None else sums[i] + part
            if moments:
                pqt = pq.transpose(0, 2, 1)
                for i, part in enumerate((pq @ pqt, pf @ pqt, pf @ pf.transpose(0, 2, 1))):
                    part = part.astype(np.float64)
                    prods[i] = part if prods[i] is None else prods[i] + part
            count += pq.shape[2]
        self.count = count
        self.mean_q, self.mean_f = sums[0] / count, sums[1] / count
        if moments:
            self.a, cf, self.f = (p / count for p in prods)
            self.c = cf.transpose(0, 2, 1)  # E[x^ x']

    def centre(self) -> None:
        """Turn the second moments into covariances (the error's variance instead of its mean square)."""
        mq, mf = self.mean_q, self.mean_f
        self.a = self.a - mq[:, :, None] * mq[:, None, :]
        self.c = self.c - mq[:, :, None] * mf[:, None, :]
        self.f = self.f - mf[:, :, None] * mf[:, None, :]


def patch_stats(step: LayerStep, moments: bool) -> PatchStats:
    """The layer's patch statistics, computed once per layer and shared through ``step.cache``."""
    stats = step.cache.get("patch_stats")
    if stats is None or (moments and not hasattr(stats, "a")):
        stats = PatchStats(step.layer, step.dequantized_input(), step.x_fp32, moments)
        step.cache["patch_stats"] = stats
    return stats
