"""Shape-utility layers: Squeeze, ExpandDims, Einsum, Reorg (ncnn axes are numpy's without batch)."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.shapes_extra import einsum_equation, expanded_shape, squeezed_axes


@register_op("Squeeze")
class Squeeze(Op):
    """Drop the chosen size-1 axes (all of them dropped: a 1-element 1-D blob)."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x`` reshaped without the squeezed axes."""
        drop = set(squeezed_axes(self.layer, x.shape[1:]))
        kept = tuple(s for i, s in enumerate(x.shape[1:]) if i not in drop)
        return x.reshape((x.shape[0], *(kept or (1,))))


@register_op("ExpandDims")
class ExpandDims(Op):
    """Insert size-1 axes at ``3=axes``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x`` reshaped with the new axes."""
        return x.reshape((x.shape[0], *expanded_shape(self.layer, x.shape[1:])))


@register_op("Einsum")
class Einsum(Op):
    """Einstein summation over the inputs; equation letters name numpy axes (``i``-``x``)."""

    def run(self, *xs: np.ndarray) -> np.ndarray:
        """The summed product, batched along a leading axis."""
        tokens, rhs = einsum_equation(self.layer)
        if rhs == "" and tokens == ["ii"]:
            return np.trace(xs[0], axis1=1, axis2=2).reshape(-1, 1).astype(np.float32)
        spec = ",".join("Z" + t for t in tokens) + "->Z" + rhs
        return np.einsum(spec, *xs, dtype=np.float32, optimize=True)


@register_op("Reorg")
class Reorg(Op):
    """Space to depth by ``0=stride``; ``1=mode`` 0 puts the offsets inside each channel's group
    (channel ``q * s * s + offset``), 1 outside (``offset * c + q``)."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, c*s*s, h/s, w/s)``."""
        s = self.p["stride"]
        n, c, h, w = x.shape
        oh, ow = h // s, w // s
        t = x[:, :, : oh * s, : ow * s].reshape(n, c, oh, s, ow, s).transpose(0, 1, 3, 5, 2, 4)
        if self.p["mode"] == 1:
            t = t.transpose(0, 2, 3, 1, 4, 5)
        return np.ascontiguousarray(t).reshape(n, c * s * s, oh, ow)
