"""1-D and 3-D windows: Convolution1D/3D, ConvolutionDepthWise1D/3D, Deconvolution(DepthWise)1D/3D,
Pooling1D/3D (fp32).

Inputs are batched ``(N, c, w)`` (1-D types) or ``(N, c, d, h, w)`` (3-D types).  The geometry
(pads, full padding's tail, SAME) is :mod:`ncnnc.core.shapes_nd`'s, shared with shape inference.
"""

from __future__ import annotations

import itertools

import numpy as np

from ncnnc.backends.numpy.common import activate
from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.ir import Layer
from ncnnc.core.layer_types_nd import window_rank
from ncnnc.core.shapes_nd import AXES, PADS, Axis, conv_axes, deconv_sizes, pool_axes

f32 = np.float32
FLT_MAX = f32(3.4028234663852886e38)


def _pad(x: np.ndarray, axes: list[Axis], value: float) -> np.ndarray:
    widths = [(0, 0), (0, 0)] + [(a.before, a.after + a.tail) for a in axes]
    return np.pad(x, widths, constant_values=value)


def _taps(x: np.ndarray, axes: list[Axis], outs: list[int]) -> list[np.ndarray]:
    """The strided views of padded ``x (N, C, *spatial)`` that each kernel tap sees, each ``(N, C, *outs)``."""
    views = []
    for tap in itertools.product(*(range(a.kernel) for a in axes)):
        index = tuple(slice(t * a.dilation, t * a.dilation + a.stride * (o - 1) + 1, a.stride)
                      for t, a, o in zip(tap, axes, outs))
        views.append(x[(slice(None), slice(None), *index)])
    return views


class _WeightedND(Op):
    """An N-D (de)convolution's constant weights, bias and group count (dynamic weights refused)."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        if self.p["dynamic_weight"]:
            raise self.unsupported("with dynamic weights")
        self.rank = window_rank(layer.type)
        self.weight = layer.weights["weight"].data.astype(f32)
        self.bias = layer.weights["bias"].data.astype(f32) if "bias" in layer.weights else None
        self.group = self.p["group"] if "group" in self.p.schema.by_name else 1


class _ConvND(_WeightedND):
    """Grouped N-D convolution: ``out[o] = bias[o] + sum(weight[o, i, tap] * x[group(o) i, at tap])``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, cin, *spatial) -> (N, num_output, *out_spatial)``."""
        axes = conv_axes(self.layer, x.shape[2:])
        outs = [a.out(s) for a, s in zip(axes, x.shape[2:])]
        xp = _pad(x, axes, self.p["pad_value"])
        n, cin, g = x.shape[0], x.shape[1], self.group
        cout = self.weight.shape[0]
        w = self.weight.reshape(g, cout // g, cin // g, -1)  # taps flattened in product order
        out = np.zeros((n, g, cout // g, *outs), f32)
        for t, view in enumerate(_taps(xp, axes, outs)):
            grouped = view.reshape(n, g, cin // g, -1)
            out.reshape(n, g, cout // g, -1)[...] += np.einsum("goi,ngip->ngop", w[..., t], grouped)
        out = out.reshape(n, cout, *outs)
        if self.bias is not None:
            out += self.bias.reshape((1, -1) + (1,) * self.rank)
        return activate(out, self.p["activation_type"], list(self.p["activation_params"]),
                        f"layer {self.layer.name}")


for _name in ("Convolution1D", "ConvolutionDepthWise1D", "Convolution3D", "ConvolutionDepthWise3D"):
    register_op(_name)(type(_name, (_ConvND,), {"__doc__": f"ncnn {_name} (fp32)."}))


class _DeconvND(_WeightedND):
    """Grouped N-D transposed convolution: every input position adds ``weight[o, i, tap] * x[i]`` at
    ``position * stride + tap * dilation`` of the full output; then bias, activation, and the pads cut."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, cin, *spatial) -> (N, num_output, *out_spatial)``."""
        sizes = deconv_sizes(self.layer, x.shape[2:])
        names = AXES[self.rank]
        kernel = [self.p[f"kernel_{n}"] for n in names]
        stride = [self.p[f"stride_{n}"] for n in names]
        dilation = [self.p[f"dilation_{n}"] for n in names]
        n, cin, g = x.shape[0], x.shape[1], self.group
        cout = self.weight.shape[0]
        w = self.weight.reshape(g, cout // g, cin // g, -1)
        grouped = x.reshape(n, g, cin // g, -1)
        full = np.zeros((n, g, cout // g, *(size for size, _b, _a in sizes)), f32)
        for t, tap in enumerate(itertools.product(*(range(k) for k in kernel))):
            part = np.einsum("goi,ngip->ngop", w[..., t], grouped).reshape(n, g, cout // g, *x.shape[2:])
            index = tuple(slice(k * d, k * d + s * (m - 1) + 1, s)
                          for k, d, s, m in zip(tap, dilation, stride, x.shape[2:]))
            full[(slice(None),) * 3 + index] += part
        out = full.reshape(n, cout, *full.shape[3:])
        if self.bias is not None:
            out += self.bias.reshape((1, -1) + (1,) * self.rank)
        out = activate(out, self.p["activation_type"], list(self.p["activation_params"]), f"layer {self.layer.name}")
        cut = tuple(slice(b, size - a) for size, b, a in sizes)
        return np.ascontiguousarray(out[(slice(None), slice(None), *cut)])


for _name in ("Deconvolution1D", "DeconvolutionDepthWise1D", "Deconvolution3D", "DeconvolutionDepthWise3D"):
    register_op(_name)(type(_name, (_DeconvND,), {"__doc__": f"ncnn {_name} (fp32)."}))


class _PoolND(Op):
    """Max / average N-D pooling with ncnn's pad modes; global pooling gives ``(N, c)``.

    The average without ``avgpool_count_include_pad`` counts only the positions inside the pad
    params (and before full padding's tail), as ncnn does; padding of a max pool is ``-FLT_MAX``, and
    a window of padding only averages ``0 / 0``.
    """

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, c, *spatial) -> (N, c, *out_spatial)``."""
        p = self.p
        spatial = tuple(range(2, x.ndim))
        is_max = p["pooling_type"] == 0
        if p["pooling_type"] not in (0, 1):
            raise self.unsupported(f"pooling_type {p['pooling_type']}")
        if p["global_pooling"]:
            return x.max(axis=spatial) if is_max else x.mean(axis=spatial, dtype=f32)
        if p["adaptive_pooling"]:
            raise self.unsupported("adaptive pooling")
        axes = pool_axes(self.layer, x.shape[2:])
        outs = [a.out(s) for a, s in zip(axes, x.shape[2:])]
        xp = _pad(x, axes, -FLT_MAX if is_max else 0.0)
        if is_max:
            return np.maximum.reduce(_taps(xp, axes, outs))
        if p["avgpool_count_include_pad"]:
            return np.add.reduce(_taps(xp, axes, outs), dtype=f32) / f32(np.prod([a.kernel for a in axes]))
        # ncnn sums and counts [pad param before, padded size - pad param after - tail) along each axis:
        # the input itself for explicit pads, but not for SAME padding with pad params given
        inside = np.zeros(xp.shape[2:], f32)
        params = [[p[k] for k in PADS[name]] for name in AXES[len(axes)]]
        inside[tuple(slice(lo, size - hi - a.tail) for (lo, hi), a, size in zip(params, axes, xp.shape[2:]))] = 1.0
        total = np.add.reduce(_taps(xp * inside, axes, outs), dtype=f32)
        count = np.add.reduce(_taps(inside[None, None], axes, outs))
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / count


for _name in ("Pooling1D", "Pooling3D"):
    register_op(_name)(type(_name, (_PoolND,), {"__doc__": f"ncnn {_name} (fp32)."}))
