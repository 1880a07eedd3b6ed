"""Normalizing layers: Softmax, GroupNorm, InstanceNorm, LayerNorm."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.common import np_axis
from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.ir import Layer

f32 = np.float32


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True, dtype=f32)
    centered = x - mean
    var = np.mean(centered * centered, axis=axes, keepdims=True, dtype=f32)
    return centered / np.sqrt(var + f32(eps))


def _affine(layer: Layer) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not layer.p("affine"):
        return None, None
    return layer.weight("gamma"), layer.weight("beta")


@register_op("Softmax")
class Softmax(Op):
    """Softmax along ``0=axis`` (ncnn axis; needs ``1=1`` for a non-zero axis, as ncnn does)."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, softmax along the layer's axis."""
        axis = np_axis(self.p["axis"], x.ndim - 1)
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True, dtype=f32)


@register_op("GroupNorm")
class GroupNorm(Op):
    """Normalize each of ``0=group`` channel groups over its channels and positions."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.gamma, self.beta = _affine(layer)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, normalized per channel group (then ``gamma``/``beta`` per channel with ``affine``)."""
        n, c = x.shape[:2]
        g = self.p["group"]
        y = _normalize(x.reshape(n, g, -1), (2,), self.p["eps"]).reshape(x.shape)
        if self.gamma is not None:
            shape = (1, c) + (1,) * (x.ndim - 2)
            y = y * self.gamma.reshape(shape) + self.beta.reshape(shape)
        return y


@register_op("InstanceNorm")
class InstanceNorm(Op):
    """Normalize each channel over its positions."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.gamma, self.beta = _affine(layer)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, normalized per channel (then ``gamma``/``beta`` per channel with ``affine``)."""
        y = _normalize(x, tuple(range(2, x.ndim)), self.p["eps"])
        if self.gamma is not None:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            y = y * self.gamma.reshape(shape) + self.beta.reshape(shape)
        return y


@register_op("LayerNorm")
class LayerNorm(Op):
    """Normalize over the innermost axes holding ``0=affine_size`` elements (w, or h*w of a 3-D blob)."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.gamma, self.beta = _affine(layer)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, normalized over the innermost axes (then ``gamma``/``beta`` with ``affine``)."""
        size = self.p["affine_size"]
        naxes = 1 if x.ndim < 4 or size == x.shape[-1] else 2
        axes = tuple(range(x.ndim - naxes, x.ndim))
        y = _normalize(x, axes, self.p["eps"])
        if self.gamma is not None:
            shape = x.shape[x.ndim - naxes:]
            y = y * self.gamma.reshape(shape) + self.beta.reshape(shape)
        return y
