"""Window geometry and shape rules of the 1-D / 3-D types and the tensor types of
:mod:`ncnnc.core.layer_types_nd` (shapes in numpy order without batch, as in :mod:`ncnnc.core.shapes`).

A 1-D window type reads a 2-D blob ``(c, w)``, a 3-D one a 4-D blob ``(c, d, h, w)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ncnnc.core.errors import UnsupportedError
from ncnnc.core.ir import Layer
from ncnnc.core.layer_types_nd import window_rank
from ncnnc.core.shapes import Shape, WindowError, shape_rule

AXES = {1: ("w",), 3: ("d", "h", "w")}
PADS = {"w": ("pad_left", "pad_right"), "h": ("pad_top", "pad_bottom"), "d": ("pad_front", "pad_behind")}


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a window: kernel, stride, dilation, the pads before/after, full padding's tail."""

    kernel: int
    stride: int
    dilation: int
    before: int
    after: int
    tail: int = 0

    def out(self, size: int) -> int:
        """Output positions along an axis of ``size`` input positions."""
        extent = self.dilation * (self.kernel - 1) + 1
        return (size + self.before + self.after + self.tail - extent) // self.stride + 1


def _same(kernel: int, stride: int, dilation: int, size: int, lower: bool) -> tuple[int, int]:
    extent = dilation * (kernel - 1) + 1
    total = max((size + stride - 1) // stride * stride - stride + extent - size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def conv_axes(layer: Layer, sizes: Shape) -> list[Axis]:
    """Each spatial axis (outermost first) of an N-D Convolution / ConvolutionDepthWise layer."""
    rank = window_rank(layer.type)
    axes = []
    for name, size in zip(AXES[rank], sizes):
        k, s, d = layer.p(f"kernel_{name}"), layer.p(f"stride_{name}"), layer.p(f"dilation_{name}")
        before, after = (layer.p(p) for p in PADS[name])
        if layer.p("pad_left") in (-233, -234):  # SAME_UPPER / SAME_LOWER
            before, after = _same(k, s, d, size, layer.p("pad_left") == -234)
        elif before < 0 or after < 0:
            raise UnsupportedError(f"pads {before}, {after} are not supported", where=f"layer {layer.name}")
        axes.append(Axis(k, s, d, before, after))
    return axes


def pool_axes(layer: Layer, sizes: Shape) -> list[Axis]:
    """Each spatial axis (outermost first) of a Pooling1D / Pooling3D layer, for its ``5=pad_mode``.

    Full padding (0) adds a tail after the pads so that the last window fits; SAME (2 upper, 3 lower)
    pads as TensorFlow does, and ncnn's lower split applies to h and w only (d splits as upper).
    """
    rank = window_rank(layer.type)
    mode = layer.p("pad_mode")
    same = [_same(layer.p(f"kernel_{n}"), layer.p(f"stride_{n}"), 1, size, mode == 3 and n != "d")
            for n, size in zip(AXES[rank], sizes)]
    axes = []
    for name, size, (same_before, same_after) in zip(AXES[rank], sizes, same):
        k, s = layer.p(f"kernel_{name}"), layer.p(f"stride_{name}")
        before, after = (layer.p(p) for p in PADS[name])
        tail = 0
        if mode == 0:
            rest = (size + before + after - k) % s
            tail = s - rest if rest else 0
        elif mode in (2, 3):
            before, after = same_before, same_after
        elif mode != 1:
            raise UnsupportedError(f"pad_mode {mode} is not supported", where=f"layer {layer.name}")
        axes.append(Axis(k, s, 1, before, after, tail))
    return axes


def _window_out(layer: Layer, axes: list[Axis], sizes: Shape) -> list[int]:
    """The output size along each axis; :class:`~ncnnc.core.shapes.WindowError` when a window leaves none."""
    out = [a.out(s) for a, s in zip(axes, sizes)]
    if any(o <= 0 for o in out):
        windows = "x".join(str(a.dilation * (a.kernel - 1) + 1) for a in axes)
        padded = "x".join(str(s + a.before + a.after + a.tail) for a, s in zip(axes, sizes))
        raise WindowError(f"its {windows} window is larger than its padded input {padded} (outermost axis first)",
                          where=f"layer {layer.name}")
    return out


@shape_rule("Convolution1D", "ConvolutionDepthWise1D", "Convolution3D", "ConvolutionDepthWise3D")
def _conv_nd(layer: Layer, ins: list[Shape]) -> list[Shape]:
    spatial = ins[0][1:]
    return [(layer.p("num_output"), *_window_out(layer, conv_axes(layer, spatial), spatial))]


OUTPUT_PADS = {"w": "output_pad_right", "h": "output_pad_bottom", "d": "output_pad_behind"}


def deconv_sizes(layer: Layer, sizes: Shape) -> list[tuple[int, int, int]]:
    """Each spatial axis (outermost first) of an N-D Deconvolution: ``(full size, cut before, cut after)``.

    The full size is ``(size - 1) * stride + dilation * (kernel - 1) + 1 + output_pad``; ncnn cuts the pad
    params from it (only explicit pads are supported here: no SAME / ``output_w`` forms).
    """
    rank = window_rank(layer.type)
    names = AXES[rank]
    if any(layer.p(p) < 0 for n in names for p in PADS[n]) or layer.p("output_w") > 0:
        raise UnsupportedError("Deconvolution with SAME padding or output_w is not supported",
                               where=f"layer {layer.name}")
    result = []
    for name, size in zip(names, sizes):
        k, s, d = layer.p(f"kernel_{name}"), layer.p(f"stride_{name}"), layer.p(f"dilation_{name}")
        full = (size - 1) * s + d * (k - 1) + 1 + layer.p(OUTPUT_PADS[name])
        before, after = (layer.p(p) for p in PADS[name])
        result.append((full, before, after))
    return result


@shape_rule("Deconvolution1D", "DeconvolutionDepthWise1D", "Deconvolution3D", "DeconvolutionDepthWise3D")
def _deconv_nd(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [(layer.p("num_output"), *(full - b - a for full, b, a in deconv_sizes(layer, ins[0][1:])))]


@shape_rule("Pooling1D", "Pooling3D")
def _pool_nd(layer: Layer, ins: list[Shape]) -> list[Shape]:
    if layer.p("global_pooling"):
        return [(ins[0][0],)]
    if layer.p("adaptive_pooling"):
        raise UnsupportedError("adaptive 1-D/3-D pooling is not supported", where=f"layer {layer.name}")
    spatial = ins[0][1:]
    return [(ins[0][0], *_window_out(layer, pool_axes(layer, spatial), spatial))]


@shape_rule("Softplus", "Shrink", "CELU", "Erf")
def _same_shape(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [ins[0]]


@shape_rule("Tile")
def _tile(layer: Layer, ins: list[Shape]) -> list[Shape]:
    shape = list(ins[0])
    repeats = list(layer.p("repeats"))
    if repeats:
        if len(repeats) > len(shape):
            raise UnsupportedError("Tile repeats longer than the blob's rank are not supported",
                                   where=f"layer {layer.name}")
        repeats = [1] * (len(shape) - len(repeats)) + repeats
    else:
        repeats = [1] * len(shape)
        repeats[layer.p("axis")] = layer.p("tiles")
    return [tuple(s * r for s, r in zip(shape, repeats))]


@shape_rule("MatMul")
def _matmul(layer: Layer, ins: list[Shape]) -> list[Shape]:
    a, b = ins[0], ins[1]
    if layer.p("transB"):
        b = (*b[:-2], b[-1], b[-2]) if len(b) >= 2 else b
    if len(a) == 1 or len(b) == 1:
        raise UnsupportedError("MatMul of a 1-D blob is not supported", where=f"layer {layer.name}")
    batch_a, batch_b = a[:-2], b[:-2]
    n = max(len(batch_a), len(batch_b))
    pa, pb = (1,) * (n - len(batch_a)) + batch_a, (1,) * (n - len(batch_b)) + batch_b
    return [(*(max(x, y) for x, y in zip(pa, pb)), a[-2], b[-1])]


@shape_rule("PixelShuffle")
def _pixel_shuffle(layer: Layer, ins: list[Shape]) -> list[Shape]:
    c, h, w = ins[0]
    r = layer.p("upscale_factor")
    return [(c // (r * r), h * r, w * r)]


@shape_rule("GLU")
def _glu(layer: Layer, ins: list[Shape]) -> list[Shape]:
    shape = list(ins[0])
    axis = layer.p("axis")
    axis = axis + len(shape) if axis < 0 else axis
    shape[axis] //= 2
    return [tuple(shape)]
