"""Local response normalisation (LRN) as ncnn computes it."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.registry import Op, register_op


@register_op("LRN")
class LRN(Op):
    """``x * (bias + alpha / n * sum of squares in the window) ** -beta``; the window spans
    ``local_size`` neighbouring channels (``0=region_type`` 0) or ``local_size x local_size``
    neighbouring pixels of the channel (1, zero-padded), ``n`` its element count."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """The normalised batch ``(N, c, h, w)``."""
        size = self.p["local_size"]
        sq = x * x
        half = size // 2
        if self.p["region_type"] == 0:
            c = x.shape[1]
            padded = np.pad(sq, ((0, 0), (half, half), (0, 0), (0, 0)))
            total = sum(padded[:, i:i + c] for i in range(2 * half + 1))
            count = size
        else:
            h, w = x.shape[2:]
            padded = np.pad(sq, ((0, 0), (0, 0), (half, size - half - 1), (half, size - half - 1)))
            total = sum(padded[:, :, i:i + h, j:j + w] for i in range(size) for j in range(size))
            count = size * size
        alpha = np.float32(self.p["alpha"]) / np.float32(count)
        base = np.float32(self.p["bias"]) + alpha * total.astype(np.float32)
        return (x * np.power(base, -np.float32(self.p["beta"]))).astype(np.float32)
