"""Reduction: sum, asum, sumsq, mean, max, min, prod, L1, L2, log-sum and log-sum-exp over axes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.ir import Layer

f32 = np.float32
Axes = tuple[int, ...]


def _sum(x: np.ndarray, axes: Axes) -> np.ndarray:
    return x.sum(axis=axes, keepdims=True, dtype=f32)


REDUCE: dict[int, Callable[[np.ndarray, Axes], np.ndarray]] = {
    0: _sum,
    1: lambda x, axes: _sum(np.abs(x), axes),
    2: lambda x, axes: _sum(x * x, axes),
    3: lambda x, axes: _sum(x, axes) / f32(np.prod([x.shape[a] for a in axes], dtype=np.int64)),
    4: lambda x, axes: x.max(axis=axes, keepdims=True),
    5: lambda x, axes: x.min(axis=axes, keepdims=True),
    6: lambda x, axes: x.prod(axis=axes, keepdims=True, dtype=f32),
    7: lambda x, axes: _sum(np.abs(x), axes),
    8: lambda x, axes: np.sqrt(_sum(x * x, axes)),
    9: lambda x, axes: np.log(_sum(x, axes)),
    10: lambda x, axes: np.log(_sum(np.exp(x), axes)),
}
"""Reduction ``0=operation`` -> ``f(x, numpy axes)`` with the reduced axes kept (size 1).
ncnn multiplies every result by ``2=coeff`` afterwards, L1/L2/log forms included."""


@register_op("Reduction")
class Reduction(Op):
    """Reduce over every axis (``1=reduce_all``) or over ``3=axes``, keeping them with ``4=keepdims``.

    With ``reduce_all=0`` ncnn only accepts ``5=fixbug0=1`` params, whose axes count the blob's own
    dims in numpy order ((c, h, w), (c, d, h, w); negative from the end); it refuses the old
    convention (axes counted with a batch axis) with "param is too old", and so does this op.
    A 1-D blob is always reduced whole (whatever the axes); an empty ``axes`` list on a larger blob
    reduces nothing (the operation's element-wise form).  Without ``keepdims`` a full reduction gives a
    1-D blob of one element.
    """

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        op = self.p["operation"]
        if op not in REDUCE:
            raise self.unsupported(f"operation {op}")
        if not self.p["reduce_all"] and not self.p["fixbug0"]:
            raise self.unsupported("with reduce_all=0 and without 5=1 (old axes convention; the ncnn runtime "
                                   "refuses it as \"param is too old\")")
        self.fn = REDUCE[op]

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x`` reduced over the layer's axes (or all axes), times ``coeff``, in float32."""
        dims = x.ndim - 1
        if self.p["reduce_all"] or dims == 1:  # ncnn always reduces a 1-D blob whole
            axes = tuple(range(1, x.ndim))
        else:
            axes = tuple(sorted({(a + dims if a < 0 else a) + 1 for a in self.p["axes"]}))
            if any(not 1 <= a <= dims for a in axes):
                raise ValueError(f"axes {self.p['axes']} out of range for a {dims}-D blob")
        with np.errstate(all="ignore"):
            out = self.fn(x, axes)
            coeff = self.p["coeff"]
            if coeff != 1:
                out = out * f32(coeff)
        if self.p["keepdims"]:
            return out.astype(f32, copy=False)
        kept = [s for i, s in enumerate(out.shape) if i == 0 or i not in axes]
        return out.reshape(kept if len(kept) > 1 else (x.shape[0], 1)).astype(f32, copy=False)
