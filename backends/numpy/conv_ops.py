"""Convolution, ConvolutionDepthWise, Deconvolution, DeconvolutionDepthWise and InnerProduct (fp32).

Convolutions run as im2col + one matrix product per group over the whole batch; depthwise
convolutions (one input and one output channel per group) as a sum of shifted, scaled views.
A 1-D blob ``(w,)`` is convolved as a one-channel ``(1, 1, w)`` image and a 2-D blob ``(h, w)`` as a
one-channel ``(1, h, w)`` image, as ncnn does; ncnn's border copy pads a 1-D blob along w only, so
top/bottom padding is ignored there (and a kernel taller than one row is refused: the runtime reads
outside the blob).  A plain Convolution with a 1x1 kernel on a 1-D blob is ncnn's InnerProduct
compatibility path instead (output ``(num_output,)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ncnnc.backends.numpy.common import activate, as_image
from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.ir import Layer

_CACHE_VALUES = 1 << 18
"""Values a depthwise chunk of images may hold (about 1 MB of float32)."""


def half(v: int) -> int:
    """``v / 2`` rounded toward zero, as C's integer division (SAME padding can be negative)."""
    return -(-v // 2) if v < 0 else v // 2


def _pad_amounts(p, w: int, h: int, ext_w: int, ext_h: int, stride_w: int, stride_h: int) -> tuple[int, ...]:
    """``(top, bottom, left, right)`` padding of a convolution input, SAME modes -233/-234 resolved."""
    left, right, top, bottom = p["pad_left"], p["pad_right"], p["pad_top"], p["pad_bottom"]
    if left > 0 or right > 0 or top > 0 or bottom > 0:
        return max(top, 0), max(bottom, 0), max(left, 0), max(right, 0)
    if (left, right, top, bottom) in ((-233,) * 4, (-234,) * 4):
        wpad = ext_w + (w - 1) // stride_w * stride_w - w
        hpad = ext_h + (h - 1) // stride_h * stride_h - h
        if wpad <= 0 and hpad <= 0:
            return 0, 0, 0, 0
        if left == -233:
            return half(hpad), hpad - half(hpad), half(wpad), wpad - half(wpad)
        return hpad - half(hpad), half(hpad), wpad - half(wpad), half(wpad)
    return 0, 0, 0, 0


def pad_hw(x: np.ndarray, top: int, bottom: int, left: int, right: int, value: float = 0.0) -> np.ndarray:
    """Constant-pad the last two axes of ``x``; a negative amount removes rows/columns instead
    (what ncnn's border copy does when a SAME padding comes out negative along one axis)."""
    if not (top or bottom or left or right):
        return x
    if min(top, bottom, left, right) < 0:
        h, w = x.shape[-2:]
        x = x[..., max(-top, 0): h - max(-bottom, 0), max(-left, 0): w - max(-right, 0)]
        top, bottom, left, right = (max(v, 0) for v in (top, bottom, left, right))
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, constant_values=np.float32(value))


def windows(x: np.ndarray, kh: int, kw: int, dh: int, dw: int, sh: int, sw: int,
            oh: int, ow: int) -> list[np.ndarray]:
    """The ``kh * kw`` strided views of ``x (..., H, W)`` that kernel taps see, each ``(..., oh, ow)``."""
    return [x[..., i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            for i in range(kh) for j in range(kw)]


class _KernelOp(Op):
    """Kernel geometry, group sizes, bias and fused activation of the (de)convolution ops."""

    grouped = False

    def _read_kernel(self) -> np.ndarray:
        """Set the geometry, group, bias and activation attributes; return the float32 weight."""
        p = self.p
        if p["dynamic_weight"]:
            raise self.unsupported("with dynamic_weight=1")
        self.n = p["num_output"]
        self.kw, self.kh = p["kernel_w"], p["kernel_h"]
        self.dw, self.dh = p["dilation_w"], p["dilation_h"]
        self.sw, self.sh = p["stride_w"], p["stride_h"]
        self.group = p["group"] if self.grouped else 1
        weight = self.layer.weight("weight")
        self.cin_g = weight.size // (self.n * self.kw * self.kh)
        self.out_g = self.n // self.group
        self.bias = self.layer.weight("bias").reshape(1, -1, 1, 1) if p["bias_term"] else None
        self.act, self.act_params = p["activation_type"], p["activation_params"]
        return weight


class _ConvBase(_KernelOp):
    """Shared geometry, padding, im2col and epilogue of Convolution and ConvolutionDepthWise."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        weight = self._read_kernel()
        # (group, out_g, cin_g * kh * kw)
        self.wmat = np.ascontiguousarray(weight.reshape(self.group, self.out_g, self.cin_g * self.kh * self.kw))

    def run(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``x (N, C, H, W) -> (N, num_output, OH, OW)``; 1-D and 2-D blobs are one-channel images.

        ``out``: an array of the output's shape, each image's part contiguous (a slice of a
        concatenation along channels), to write the result into.
        """
        x, pads, oh, ow = self._geometry(x)
        check_output_size(oh, ow)
        if self.cin_g == 1 and self.out_g == 1 and self.group > 1:
            return self._depthwise(pad_hw(x, *pads, self.p["pad_value"]), oh, ow, out)
        return self._gemm(x, oh, ow, pads, self.p["pad_value"], self._epilogue, out)

    def output_shape(self, x: np.ndarray) -> tuple[int, ...]:
        """The shape :meth:`run` gives for ``x`` (the interpreter sizes concatenations with it)."""
        _x, _pads, oh, ow = self._geometry(x)
        return (x.shape[0], self.n, oh, ow)

    def _geometry(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int], int, int]:
        """``x`` as an image with negative padding cropped, the remaining padding, and the output size."""
        if x.ndim > 4:
            raise self.unsupported("on a 4-D blob")
        flat = x.ndim == 2
        ext_w, ext_h = self.dw * (self.kw - 1) + 1, self.dh * (self.kh - 1) + 1
        if flat and ext_h > 1:
            raise self.unsupported(f"with a kernel {ext_h} rows high on a 1-D blob")
        x = as_image(x)
        _n, _c, h, w = x.shape
        top, bottom, left, right = _pad_amounts(self.p, w, h, ext_w, ext_h, self.sw, self.sh)
        if flat:
            top = bottom = 0
        x, pads = crop_negative(x, top, bottom, left, right)
        hp, wp = x.shape[2] + pads[0] + pads[1], x.shape[3] + pads[2] + pads[3]
        return x, pads, (hp - ext_h) // self.sh + 1, (wp - ext_w) // self.sw + 1

    def _epilogue(self, out: np.ndarray) -> None:
        """Bias and fused activation, in place on one image's ``(num_output, OH * OW)`` output."""
        if self.bias is not None:
            out += self.bias.reshape(-1, 1)
        result = activate(out, self.act, self.act_params, f"layer {self.layer.name}")
        if result is not out:
            out[...] = result

    def _gemm(self, x: np.ndarray, oh: int, ow: int, pads: tuple[int, int, int, int] = (0, 0, 0, 0),
              pad_value: float = 0.0, epilogue: Callable[[np.ndarray], None] | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
        """Per image: im2col (``pads`` applied while gathering) and one matrix product per group;
        ``epilogue`` then runs on the image's ``(num_output, OH * OW)`` result while it is in cache.

        The products keep one image's shapes whatever the batch: BLAS rounds differently when the
        column count changes, and an image's result must not depend on the batch it is in.
        """
        check_output_size(oh, ow)
        n = x.shape[0]
        result = _output(out, (n, self.n, oh, ow), np.result_type(self.wmat, x))
        out = result.reshape(n, self.group, self.out_g, oh * ow)
        direct = self.kh == self.kw == 1 and self.sh == self.sw == 1 and not any(pads)
        cols = None if direct else Im2col(x.shape[1:], self.kh, self.kw, self.dh, self.dw, self.sh, self.sw,
                                           oh, ow, pads, pad_value, x.dtype)
        for i in range(n):
            if cols is None:
                image = x[i].reshape(self.group, self.cin_g, oh * ow)
            else:
                image = cols.gather(x[i]).reshape(self.group, self.cin_g * self.kh * self.kw, oh * ow)
            np.matmul(self.wmat, image, out=out[i])
            if epilogue is not None:
                epilogue(out[i].reshape(self.n, oh * ow))
        return result

    def _depthwise(self, x: np.ndarray, oh: int, ow: int, out: np.ndarray | None = None) -> np.ndarray:
        """One input and one output channel per group: a sum of shifted, scaled views, tap by tap.

        Images go in chunks that stay in cache.  With stride 1 a tap is one contiguous run of the
        flattened padded rows (the values past ``ow`` in each row are computed and dropped), so numpy
        works on long rows even for small images.
        """
        n, c, hp, wp = x.shape
        out = _output(out, (n, self.n, oh, ow), np.result_type(self.wmat, x))
        wk = self.wmat.reshape(self.n, self.kh * self.kw)
        flat = self.sh == self.sw == 1
        chunk = max(1, _CACHE_VALUES // (c * (oh * wp if flat else oh * ow)))
        for start in range(0, n, chunk):
            part = x[start:start + chunk]
            if flat:
                length = (oh - 1) * wp + ow
                rows = np.ascontiguousarray(part).reshape(part.shape[0], c, hp * wp)
                offsets = [i * self.dh * wp + j * self.dw for i in range(self.kh) for j in range(self.kw)]
                taps = [rows[:, :, o:o + length] for o in offsets]
                acc = np.empty((part.shape[0], c, oh * wp), out.dtype)
                self._weighted_sum(taps, wk, acc[:, :, :length], (1, -1, 1))
                out[start:start + chunk] = acc.reshape(-1, c, oh, wp)[:, :, :, :ow]
            else:
                taps = windows(part, self.kh, self.kw, self.dh, self.dw, self.sh, self.sw, oh, ow)
                self._weighted_sum(taps, wk, out[start:start + chunk], (1, -1, 1, 1))
            for i in range(start, min(start + chunk, n)):
                self._epilogue(out[i].reshape(self.n, oh * ow))
        return out

    @staticmethod
    def _weighted_sum(taps: list[np.ndarray], wk: np.ndarray, acc: np.ndarray, shape: tuple[int, ...]) -> None:
        """``acc = taps[0] * w0 + taps[1] * w1 + ...`` (each product rounded, added in tap order)."""
        np.multiply(taps[0], wk[:, 0].reshape(shape), out=acc)
        tmp = np.empty(acc.shape, acc.dtype)
        for k in range(1, len(taps)):
            np.multiply(taps[k], wk[:, k].reshape(shape), out=tmp)
            acc += tmp


class Im2col:
    """The column matrix of one image at a time, ``(C, kh * kw, OH, OW)``, in one reused buffer.

    Padding is never materialised: the border of each tap's rows is filled with the pad value once,
    and each image then only copies the taps' in-bounds parts.
    """

    def __init__(self, chw: tuple[int, ...], kh: int, kw: int, dh: int, dw: int, sh: int, sw: int,
                 oh: int, ow: int, pads: tuple[int, int, int, int], pad_value: float, dtype: np.dtype) -> None:
        c, h, w = chw
        top, _bottom, left, _right = pads
        self.buffer = np.empty((c, kh * kw, oh, ow), dtype)
        self.copies = []
        for i in range(kh):
            ys = _in_bounds(i * dh - top, sh, oh, h)
            for j in range(kw):
                xs = _in_bounds(j * dw - left, sw, ow, w)
                k = i * kw + j
                if ys[0] > 0 or ys[1] < oh or xs[0] > 0 or xs[1] < ow:
                    self.buffer[:, k] = pad_value
                if ys[1] > ys[0] and xs[1] > xs[0]:
                    src = (slice(ys[2], ys[2] + sh * (ys[1] - ys[0] - 1) + 1, sh),
                           slice(xs[2], xs[2] + sw * (xs[1] - xs[0] - 1) + 1, sw))
                    self.copies.append((self.buffer[:, k, ys[0]:ys[1], xs[0]:xs[1]], src))

    def gather(self, image: np.ndarray) -> np.ndarray:
        """The columns of ``image (C, H, W)`` (the buffer, overwritten by the next call)."""
        for dst, (rows, cols) in self.copies:
            dst[...] = image[:, rows, cols]
        return self.buffer


def _in_bounds(offset: int, stride: int, count: int, size: int) -> tuple[int, int, int]:
    """Output positions ``o`` in ``[lo, hi)`` whose input ``offset + o * stride`` lies in ``[0, size)``,
    and the input position of ``lo``."""
    lo = max(0, -(offset // stride)) if offset < 0 else 0
    hi = min(count, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    hi = max(hi, lo)
    return lo, hi, offset + lo * stride


def _output(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``out`` checked against the result's shape and dtype (image parts contiguous), or a new array."""
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != shape or out.dtype != dtype or (out.size and not out[0].flags.c_contiguous):
        raise ValueError(f"cannot write a {shape} {dtype} result into a {out.shape} {out.dtype} array")
    return out


def check_output_size(oh: int, ow: int) -> None:
    """Refuse a window larger than the (padded) input, which leaves no output position."""
    if oh <= 0 or ow <= 0:
        raise ValueError(f"the window does not fit in the input (output {oh}x{ow})")


def crop_negative(x: np.ndarray, top: int, bottom: int, left: int, right: int
                  ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Apply the negative padding amounts (a view that drops rows/columns); the others are returned."""
    if min(top, bottom, left, right) >= 0:
        return x, (top, bottom, left, right)
    h, w = x.shape[-2:]
    x = x[..., max(-top, 0): h - max(-bottom, 0), max(-left, 0): w - max(-right, 0)]
    return x, (max(top, 0), max(bottom, 0), max(left, 0), max(right, 0))


@register_op("Convolution")
class Convolution(_ConvBase):
    """2-D convolution with fused bias and activation."""

    def run(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`_ConvBase.run`; a 1-D blob under a 1x1 kernel is multiplied by the weight matrix."""
        if x.ndim == 2 and self.kw == self.kh == 1:
            if out is not None:
                raise ValueError("the InnerProduct form writes no given array")
            return self._inner_product(x)
        return super().run(x, out)

    def output_shape(self, x: np.ndarray) -> tuple[int, ...] | None:
        """As :meth:`_ConvBase.output_shape`; None for the InnerProduct form."""
        return None if x.ndim == 2 and self.kw == self.kh == 1 else super().output_shape(x)

    def _inner_product(self, x: np.ndarray) -> np.ndarray:
        """ncnn's deprecated path: a flattened blob through a 1x1 Convolution is an InnerProduct."""
        num_input = self.cin_g
        if x.shape[1] != num_input:
            raise self.unsupported(f"with a 1x1 kernel on a 1-D blob of {x.shape[1]} elements (the weight "
                                   f"expects {num_input}; ncnn would read past or short of the blob)")
        out = x @ self.wmat.reshape(self.n, num_input).T
        if self.bias is not None:
            out += self.bias.reshape(1, -1)
        return activate(out, self.act, self.act_params, f"layer {self.layer.name}")


@register_op("ConvolutionDepthWise")
class ConvolutionDepthWise(_ConvBase):
    """Grouped 2-D convolution (``7=group``)."""

    grouped = True


class _DeconvBase(_KernelOp):
    """Transposed convolution: every input pixel scatters ``weight * value`` into the output."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        weight = self._read_kernel()
        # stored output-major (group, out_g, cin_g, kh, kw) -> per tap (group, out_g, cin_g)
        w4 = weight.reshape(self.group, self.out_g, self.cin_g, self.kh * self.kw)
        self.taps = np.ascontiguousarray(w4.transpose(3, 0, 1, 2))

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x (N, C, H, W) -> (N, num_output, OH, OW)``; 1-D and 2-D blobs are one-channel images."""
        if x.ndim > 4:
            raise self.unsupported("on a 4-D blob")
        x = as_image(x)
        p = self.p
        n, _c, h, w = x.shape
        ext_w, ext_h = self.dw * (self.kw - 1) + 1, self.dh * (self.kh - 1) + 1
        full_w = (w - 1) * self.sw + ext_w + p["output_pad_right"]
        full_h = (h - 1) * self.sh + ext_h + p["output_pad_bottom"]
        out = np.zeros((n, self.group, self.out_g, full_h, full_w), np.float32)
        xg = x.reshape(n, self.group, self.cin_g, h * w)
        for k in range(self.kh * self.kw):
            i, j = divmod(k, self.kw)
            contrib = np.matmul(self.taps[k], xg).reshape(n, self.group, self.out_g, h, w)
            out[..., i * self.dh: i * self.dh + self.sh * (h - 1) + 1: self.sh,
                j * self.dw: j * self.dw + self.sw * (w - 1) + 1: self.sw] += contrib
        out = out.reshape(n, self.n, full_h, full_w)
        if self.bias is not None:
            out += self.bias
        out = activate(out, self.act, self.act_params, f"layer {self.layer.name}")
        return self._cut(out)

    def _cut(self, out: np.ndarray) -> np.ndarray:
        p = self.p
        left, right, top, bottom = p["pad_left"], p["pad_right"], p["pad_top"], p["pad_bottom"]
        fh, fw = out.shape[2:]
        if left > 0 or right > 0 or top > 0 or bottom > 0:
            return out[:, :, top: fh - bottom, left: fw - right]
        ow, oh = p["output_w"], p["output_h"]
        if ow > 0 and oh > 0:
            wcut, hcut = fw - ow, fh - oh
            pads = (left, right, top, bottom)
            if -233 in pads:
                t, lft = hcut // 2, wcut // 2
            elif -234 in pads:
                t, lft = hcut - hcut // 2, wcut - wcut // 2
            else:
                return out
            return out[:, :, t: t + oh, lft: lft + ow]
        return out


@register_op("Deconvolution")
class Deconvolution(_DeconvBase):
    """2-D transposed convolution with output padding / output size and fused activation."""


@register_op("DeconvolutionDepthWise")
class DeconvolutionDepthWise(_DeconvBase):
    """Grouped 2-D transposed convolution (``7=group``)."""

    grouped = True


@register_op("InnerProduct")
class InnerProduct(Op):
    """Fully connected layer; a 2-D input whose rows match the weight is processed row by row
    (even a single row: ``(1, num_input)`` gives ``(1, num_output)``, as in the runtime)."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        n = self.p["num_output"]
        self.weight_t = np.ascontiguousarray(layer.weight("weight").reshape(n, -1).T)
        self.bias = layer.weight("bias") if self.p["bias_term"] else None

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, ...) -> (N, num_output)``, or ``(N, h, num_input) -> (N, h, num_output)``."""
        num_input = self.weight_t.shape[0]
        if x.ndim == 3 and x.shape[2] == num_input:
            out = np.matmul(x, self.weight_t)
        else:
            out = x.reshape(x.shape[0], -1) @ self.weight_t
        if self.bias is not None:
            out += self.bias
        return activate(out, self.p["activation_type"], self.p["activation_params"], f"layer {self.layer.name}")
