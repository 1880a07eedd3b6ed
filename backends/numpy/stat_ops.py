"""Statistics layers as ncnn computes them: MVN, Normalize, StatisticsPooling, ArgMax; and the storage
layers Cast and Packing, which leave fp32 values as they are in ncnnc's fp32 interpreter."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.registry import Op, register_op

F = np.float32


def _spatial_sum(x: np.ndarray) -> np.ndarray:
    """Per-sample, per-channel sums over every other axis, float32, shaped to broadcast."""
    return x.reshape(x.shape[0], x.shape[1], -1).sum(axis=2, dtype=F).reshape(x.shape[:2] + (1,) * (x.ndim - 2))


@register_op("MVN")
class MVN(Op):
    """Subtract the mean (per channel, or ``1=across_channels``), with ``0=normalize_variance`` also
    divide by ``sqrt(mean square) + eps``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """The normalised batch; a 1-D or 2-D blob is one channel and comes out 3-D, as ncnn makes it."""
        if x.ndim < 4:
            x = x.reshape((x.shape[0], 1) + (1,) * (3 - x.ndim) + x.shape[1:])
        size = F(np.prod(x.shape[2:]))
        sums = _spatial_sum(x)
        across = self.p["across_channels"]
        mean = sums.sum(axis=1, keepdims=True, dtype=F) / (F(x.shape[1]) * size) if across else sums / size
        out = (x - mean).astype(F)
        if self.p["normalize_variance"]:
            sq = _spatial_sum(out * out)
            sqmean = sq.sum(axis=1, keepdims=True, dtype=F) / (F(x.shape[1]) * size) if across else sq / size
            out = out * (F(1) / (np.sqrt(sqmean) + F(self.p["eps"])))
        return out.astype(F)


def _inverse_norm(ssum: np.ndarray, eps: np.float32, mode: int) -> np.ndarray:
    """ncnn's ``a`` for a sum of squares: caffe ``1/sqrt(s+eps)``, pytorch ``1/max(sqrt(s),eps)``,
    tensorflow ``1/sqrt(max(s,eps))``."""
    if mode == 0:
        return F(1) / np.sqrt(ssum + eps)
    if mode == 1:
        return F(1) / np.maximum(np.sqrt(ssum), eps)
    return F(1) / np.sqrt(np.maximum(ssum, eps))


@register_op("Normalize")
class Normalize(Op):
    """L2 normalisation across space and/or channels, times ``scale`` (one shared, or per channel)."""

    def __init__(self, layer) -> None:
        super().__init__(layer)
        self.scale = layer.weight("scale").reshape(-1).astype(F)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The normalised batch, same shape."""
        p = self.p
        eps, mode = F(p["eps"]), p["eps_mode"]
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        scale = np.full(shape, self.scale[0], F) if p["channel_shared"] else self.scale.reshape(shape)
        sq = (x * x).astype(F)
        if p["across_spatial"]:
            ssum = _spatial_sum(sq)
            if p["across_channel"]:
                ssum = ssum.sum(axis=1, keepdims=True, dtype=F)
            return (x * (_inverse_norm(ssum, eps, mode) * scale)).astype(F)
        if not p["across_channel"]:
            raise self.unsupported("with neither across_spatial nor across_channel")
        a = _inverse_norm(sq.sum(axis=1, keepdims=True, dtype=F), eps, mode)
        return (x * (a * scale) if p["channel_shared"] else x * a * scale).astype(F)


@register_op("StatisticsPooling")
class StatisticsPooling(Op):
    """Per-channel mean, and with ``0=include_stddev`` the population standard deviation after it."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, c)`` or ``(N, 2c)``."""
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        size = F(flat.shape[2])
        mean = flat.sum(axis=2, dtype=F) / size
        if not self.p["include_stddev"]:
            return mean
        var = ((flat - mean[:, :, None]) ** 2).sum(axis=2, dtype=F) / size
        return np.concatenate([mean, np.sqrt(var)], axis=1).astype(F)


@register_op("ArgMax")
class ArgMax(Op):
    """The ``1=topk`` largest values' flat indices (row 0); with ``0=out_max_val`` the values in row 0
    and the indices in row 1.  Equal values: the larger index first (ncnn compares (value, index) pairs)."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, 1, topk)`` or ``(N, 2, topk)``."""
        k = self.p["topk"]
        flat = x.reshape(x.shape[0], -1)
        index = np.arange(flat.shape[1])
        rows = []
        for sample in flat:
            order = np.lexsort((-index, -sample))[:k]  # value descending, then index descending
            picked = [sample[order].astype(F)] if self.p["out_max_val"] else []
            rows.append(np.stack([*picked, order.astype(F)]))
        return np.stack(rows)


@register_op("Cast")
class Cast(Op):
    """A storage conversion; in the fp32 interpreter fp32 <-> fp16/bf16 round the values as the target
    type would hold them (``1=type_to`` 2: fp16, 4: bf16), fp32 -> fp32 is the identity."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x`` with its values rounded to the target type."""
        to = self.p["type_to"]
        if to == 2:
            return x.astype(np.float16).astype(F)
        if to == 4:
            bits = x.astype(F).view(np.uint32)
            return ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(F)
        return x


@register_op("Packing")
class Packing(Op):
    """A memory-layout change (elempack): the values are unchanged."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x``."""
        return x
