"""int8 variants of Convolution, ConvolutionDepthWise and InnerProduct, and the Quantize,
Dequantize and Requantize layers, computed the way ncnn's int8 kernels compute them.

An int8 layer quantizes a float input with its input scale (``float2int8(x * scale)``: round
half away from zero, saturate to +-127); an input that is already int8 (the output of a
requantizing layer) is used as it is.  Products are summed exactly (int32 in ncnn; here float32 where
that is exact for the layer's sum length, else float64), then dequantized per output channel with
``scale_in = 1 / (input_scale * weight_scale)``: the sum converted to float32 and
``fma(sum, scale_in, bias)`` rounded once, as ncnn's x86 and arm kernels do; the fused activation
applied; a layer with ``int8_scale_term > 100`` then requantizes with its output scale and hands
int8 to its consumers.  Dequantize and Requantize read int32 inputs, as in ncnn.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.common import activate, per_channel
from ncnnc.backends.numpy.conv_ops import _ConvBase, _pad_amounts, pad_hw, windows
from ncnnc.backends.numpy.cpu_family import CpuFamily, host_family, packed_x86_depthwise, reciprocal_estimate
from ncnnc.backends.numpy.registry import INT8, Op, register_op
from ncnnc.core.int8 import absmax_scales, float2int8, fma32
from ncnnc.core.ir import Layer


def dequant_scales(input_scale: float, weight_scales: np.ndarray, estimate: bool = False) -> np.ndarray:
    """ncnn's per-channel ``1 / (input_scale * weight_scale)`` in float32 (0 where a weight scale is 0);
    with ``estimate``, the CPU's reciprocal estimate of the product, as ncnn's x86 packed depthwise kernel
    computes it (:mod:`~ncnnc.backends.numpy.cpu_family`)."""
    ws = np.asarray(weight_scales, np.float32)
    prod = np.float32(input_scale) * ws
    if estimate:
        inv = reciprocal_estimate(prod).reshape(prod.shape)
    else:
        with np.errstate(divide="ignore"):
            inv = np.float32(1.0) / prod
    return np.where(ws == 0, np.float32(0.0), inv).astype(np.float32)


def conv_dequant(input_scale: float, weight_scales: np.ndarray, family: CpuFamily, depthwise: bool,
                 channels: int) -> tuple[np.ndarray, bool]:
    """An int8 convolution's dequantization as ncnn's kernels on the CPU ``family`` compute it: the per-channel
    scales, and whether the bias is added in one fused multiply-add (ncnn's x86 pack-8 depthwise kernel takes
    the reciprocal estimate and rounds the multiplication and the addition separately)."""
    packed = packed_x86_depthwise(family, depthwise, channels)
    return dequant_scales(input_scale, weight_scales, packed), not packed


def dequantize(acc: np.ndarray, scale_in: np.ndarray, bias: np.ndarray | None, fused: bool = True) -> np.ndarray:
    """``acc * scale_in + bias`` as ncnn's kernels compute it: the int32 sum converted to float32, then
    one fused multiply-add (one rounding; without a bias, one multiplication); not ``fused``, the
    multiplication and the addition each rounded (ncnn's x86 pack-8 depthwise kernel)."""
    acc = np.asarray(acc).astype(np.float32)
    if fused or bias is None:
        return fma32(acc, scale_in, bias)
    return (acc * scale_in + bias).astype(np.float32)


def accumulator_dtype(terms: int) -> type:
    """float32 when a sum of ``terms`` int8 x int8 products is always exact in it (below 2**24), else float64."""
    return np.float32 if terms * 127 * 127 < 2**24 else np.float64


# -- on-the-fly quantization of the weight-only int8 layers (recurrent, attention) ---------------------------
def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row (last axis) with its own scale: ``(int8 values, scales shaped x.shape[:-1])``."""
    scales = absmax_scales(x, int(np.prod(x.shape[:-1]))).reshape(x.shape[:-1])
    return float2int8(x * scales[..., None]), scales


def quantize_matrices(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each matrix (last two axes) with one scale: ``(int8 values, scales shaped x.shape[:-2])``."""
    scales = absmax_scales(x, int(np.prod(x.shape[:-2]))).reshape(x.shape[:-2])
    return float2int8(x * scales[..., None, None]), scales


def int8_matmul(a: np.ndarray, a_scales: np.ndarray, b: np.ndarray, b_scales: np.ndarray) -> np.ndarray:
    """``a @ b`` of int8 operands summed exactly, times ``1 / (a row scale * b scale)``.

    ``a (..., M, K)`` has one scale per row (``a_scales (..., M)``), ``b (..., K, N)`` one per matrix
    (``b_scales (...)``); leading axes broadcast."""
    acc = accumulator_dtype(a.shape[-1])
    sums = np.matmul(a.astype(acc), b.astype(acc)).astype(np.float32)
    a_scales, b_scales = np.asarray(a_scales, np.float32), np.asarray(b_scales, np.float32)
    return sums * (np.float32(1) / (a_scales[..., :, None] * b_scales[..., None, None]))


def to_int8(x: np.ndarray, scale: float) -> np.ndarray:
    """A layer's int8 input: ``x`` itself when it is int8 already, else ``float2int8(x * scale)``."""
    if x.dtype == np.int8:
        return x
    return float2int8(x * np.float32(scale))


class _Int8Conv(_ConvBase):
    """Shared int8 convolution: quantize, exact accumulation, dequantize (+ requantize), as ncnn's kernels
    for the CPU ``family`` compute it (default: this machine's)."""

    cpu_dependent = True

    def __init__(self, layer: Layer, family: CpuFamily | None = None) -> None:
        super().__init__(layer)
        self.acc_dtype = accumulator_dtype(self.wmat.shape[-1])
        self.wmat = self.wmat.astype(self.acc_dtype)
        self.term = int(self.p["int8_scale_term"])
        self.input_scale = float(layer.weight("bottom_int8_scales").ravel()[0])
        ws = layer.weight("weight_int8_scales").ravel()
        if ws.size == self.group and ws.size != self.n:
            ws = np.repeat(ws, self.out_g)
        self.depthwise = self.cin_g == 1 and self.out_g == 1 and self.group > 1
        scale_in, self.fused = conv_dequant(self.input_scale, ws, family or host_family(), self.depthwise, self.n)
        self.scale_in = np.broadcast_to(scale_in, (self.n,)).reshape(1, -1, 1, 1)
        self.bias = layer.weight("bias").reshape(1, -1, 1, 1) if self.p["bias_term"] else None
        self.top_scale = float(layer.weight("top_int8_scales").ravel()[0]) if self.term > 100 else None

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x (N, C, H, W)`` float or int8 -> float output, or int8 when requantizing."""
        xq = to_int8(x, self.input_scale).astype(self.acc_dtype)
        h, w = xq.shape[2:]
        ext_w, ext_h = self.dw * (self.kw - 1) + 1, self.dh * (self.kh - 1) + 1
        top, bottom, left, right = _pad_amounts(self.p, w, h, ext_w, ext_h, self.sw, self.sh)
        xq = pad_hw(xq, top, bottom, left, right)
        hp, wp = xq.shape[2:]
        oh, ow = (hp - ext_h) // self.sh + 1, (wp - ext_w) // self.sw + 1
        if self.depthwise:
            taps = windows(xq, self.kh, self.kw, self.dh, self.dw, self.sh, self.sw, oh, ow)
            wk = self.wmat.reshape(self.n, self.kh * self.kw)
            acc = sum(t * wk[:, k].reshape(1, -1, 1, 1) for k, t in enumerate(taps))
        else:
            acc = self._gemm(xq, oh, ow)
        out = activate(dequantize(acc, self.scale_in, self.bias, self.fused), self.act, self.act_params,
                       f"layer {self.layer.name}")
        return out if self.top_scale is None else float2int8(out * np.float32(self.top_scale))


@register_op("Convolution", INT8)
class Int8Convolution(_Int8Conv):
    """int8 Convolution (``8=2``, ``8=102`` with requantize)."""


@register_op("ConvolutionDepthWise", INT8)
class Int8ConvolutionDepthWise(_Int8Conv):
    """int8 ConvolutionDepthWise (``8=1`` per-group weight scales, ``8=2`` one scale; +100 requantize)."""

    grouped = True


@register_op("InnerProduct", INT8)
class Int8InnerProduct(Op):
    """int8 InnerProduct (``8=2``): the flattened input quantized with one scale, float output."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        n = self.p["num_output"]
        weight = layer.weight("weight").reshape(n, -1)
        self.acc_dtype = accumulator_dtype(weight.shape[1])
        self.weight_t = np.ascontiguousarray(weight.T.astype(self.acc_dtype))
        self.input_scale = float(layer.weight("bottom_int8_scales").ravel()[0])
        ws = np.broadcast_to(layer.weight("weight_int8_scales").ravel(), (n,))
        self.scale_in = dequant_scales(self.input_scale, ws)
        self.bias = layer.weight("bias") if self.p["bias_term"] else None

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, ...) -> (N, num_output)``."""
        xq = to_int8(x, self.input_scale).reshape(x.shape[0], -1).astype(self.acc_dtype)
        out = dequantize(xq @ self.weight_t, self.scale_in, self.bias)
        return activate(out, self.p["activation_type"], self.p["activation_params"], f"layer {self.layer.name}")


def _channel_values(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One value for all, or one per ncnn channel (numpy axis 1 of a batched array)."""
    values = np.asarray(values, np.float32).ravel()
    return values if values.size == 1 else per_channel(values, x)


@register_op("Quantize")
class Quantize(Op):
    """float -> int8 with one scale or one per channel."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``float2int8(x * scale)``."""
        return float2int8(x * _channel_values(self.layer.weight("scale"), x))


@register_op("Dequantize")
class Dequantize(Op):
    """int32 -> float: ``x * scale + bias``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Dequantize an int32 input."""
        bias = self.layer.weight("bias") if self.p["bias_data_size"] else None
        scale = _channel_values(self.layer.weight("scale"), x)
        return dequantize(x, np.broadcast_to(scale, x.shape),
                          None if bias is None else np.broadcast_to(_channel_values(bias, x), x.shape))


@register_op("Requantize")
class Requantize(Op):
    """int32 -> int8: ``float2int8(activation(x * scale_in + bias) * scale_out)``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Requantize an int32 input."""
        bias = self.layer.weight("bias") if self.p["bias_data_size"] else None
        v = dequantize(x, np.broadcast_to(_channel_values(self.layer.weight("scale_in"), x), x.shape),
                       None if bias is None else np.broadcast_to(_channel_values(bias, x), x.shape))
        v = activate(v, self.p[3], self.p[4], f"layer {self.layer.name}")
        return float2int8(v * _channel_values(self.layer.weight("scale_out"), x))
