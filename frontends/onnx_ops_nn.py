"""ONNX operators with weights or windows: convolutions, pooling, normalisation, dense layers, activations."""

from __future__ import annotations

import numpy as np
import onnx

from ncnnc.core.layer_types import FLT_MAX
from ncnnc.frontends.onnx_convert import Converter, mapper
from ncnnc.frontends.onnx_ops_nd import conv_nd, conv_transpose_nd, dilated_max_pool, pool_nd, window_pads
from ncnnc.frontends.onnx_ops_tensor import binary_op


def _pads_2d(cx: Converter, attrs: dict, in_hw: tuple[int, int], kernel: list[int], strides: list[int],
             dilations: list[int]) -> list[int]:
    """Explicit ``[top, left, bottom, right]`` pads, resolving ``auto_pad`` with the static input size."""
    begins, ends = window_pads(cx, attrs, in_hw, kernel, strides, dilations)
    return [*begins, *ends]


def _window(cx: Converter, node: onnx.NodeProto, kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
    attrs = cx.attrs(node)
    x_shape = cx.shape(node.input[0])
    if len(x_shape) != 4 or len(kernel) != 2:
        raise cx.unsupported(f"only 2-D windows on NCHW inputs are supported (input shape {list(x_shape)})")
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    pads = _pads_2d(cx, attrs, (x_shape[2], x_shape[3]), kernel, strides, dilations)
    return strides, dilations, pads


def _geometry_params(kernel: list[int], strides: list[int], dilations: list[int], pads: list[int]) -> dict:
    return {1: kernel[1], 11: kernel[0], 2: dilations[1], 12: dilations[0], 3: strides[1], 13: strides[0],
            4: pads[1], 15: pads[3], 14: pads[0], 16: pads[2]}


@mapper("Conv")
def conv(cx: Converter, node: onnx.NodeProto) -> None:
    """Conv -> Convolution, or ConvolutionDepthWise when ``group > 1`` (1-D / 3-D: :func:`conv_nd`)."""
    weight = cx.input_const(node, 1)
    if weight is None or weight.ndim not in (3, 4, 5):
        raise cx.unsupported("Conv needs a constant 3-D, 4-D or 5-D weight (1-D, 2-D or 3-D convolution)")
    bias = cx.input_const(node, 2)
    if weight.ndim != 4:
        conv_nd(cx, node, weight, bias)
        return
    group = int(cx.attrs(node).get("group", 1))
    kernel = list(weight.shape[2:])
    strides, dilations, pads = _window(cx, node, kernel)
    params = {0: weight.shape[0], **_geometry_params(kernel, strides, dilations, pads),
              5: int(bias is not None), 6: int(weight.size)}
    weights = {"weight": weight}
    if bias is not None:
        weights["bias"] = bias.reshape(-1)
    ltype = "Convolution"
    if group > 1:
        ltype = "ConvolutionDepthWise"
        params[7] = group
    cx.add(ltype, [cx.logical_blob(node.input[0])], [node.output[0]], params, weights)


@mapper("ConvTranspose")
def conv_transpose(cx: Converter, node: onnx.NodeProto) -> None:
    """ConvTranspose -> Deconvolution / DeconvolutionDepthWise.

    ONNX weights ``(cin, cout/group, kh, kw)`` are stored as ncnn reads them: output-major per group,
    ``(group, cout/group, cin/group, kh, kw)``.
    """
    attrs = cx.attrs(node)
    weight = cx.input_const(node, 1)
    if weight is None or weight.ndim not in (3, 4, 5):
        raise cx.unsupported("ConvTranspose needs a constant 3-D, 4-D or 5-D weight (1-D, 2-D or 3-D deconvolution)")
    if weight.ndim != 4:
        conv_transpose_nd(cx, node, weight, cx.input_const(node, 2))
        return
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "") or "output_shape" in attrs:
        raise cx.unsupported("ConvTranspose with auto_pad or output_shape is not supported; give explicit pads")
    bias = cx.input_const(node, 2)
    group = int(attrs.get("group", 1))
    cin, cout_g, kh, kw = weight.shape
    strides, dilations, pads = _window(cx, node, [kh, kw])
    params = {0: group * cout_g, **_geometry_params([kh, kw], strides, dilations, pads),
              5: int(bias is not None), 6: int(weight.size)}
    out_pad = list(attrs.get("output_padding", [0, 0]))
    if out_pad != [0, 0]:
        params.update({18: out_pad[1], 19: out_pad[0]})
    reordered = weight.reshape(group, cin // group, cout_g, kh, kw).transpose(0, 2, 1, 3, 4)
    weights = {"weight": reordered.reshape(group * cout_g, cin // group, kh, kw)}
    if bias is not None:
        weights["bias"] = bias.reshape(-1)
    ltype = "Deconvolution"
    if group > 1:
        ltype = "DeconvolutionDepthWise"
        params[7] = group
    cx.add(ltype, [cx.logical_blob(node.input[0])], [node.output[0]], params, weights)


@mapper("MaxPool", "AveragePool")
def pool(cx: Converter, node: onnx.NodeProto) -> None:
    """MaxPool / AveragePool -> Pooling, with ONNX's output size (``ceil_mode``, ``count_include_pad``);
    1-D / 3-D kernels: :func:`pool_nd`."""
    attrs = cx.attrs(node)
    if len(node.output) > 1 and node.output[1]:
        raise cx.unsupported("MaxPool's indices output is not supported")
    kernel = list(attrs["kernel_shape"])
    if len(kernel) in (1, 3):
        pool_nd(cx, node, kernel)
        return
    strides, dilations, pads = _window(cx, node, kernel)
    is_max = node.op_type == "MaxPool"
    if dilations != [1, 1]:
        if not is_max:
            raise cx.unsupported(f"pooling dilations {dilations} are not supported by ncnn's Pooling")
        dilated_max_pool(cx, node, kernel, strides, dilations, pads[:2], pads[2:])
        return
    include_pad = int(attrs.get("count_include_pad", 0)) if not is_max else 0
    in_hw = cx.shape(node.input[0])[2:]
    out_hw = list(cx.shape(node.output[0])[2:])
    spans = [i + pads[d] + pads[d + 2] - k for d, (i, k) in enumerate(zip(in_hw, kernel))]
    floor_hw = [span // s + 1 for span, s in zip(spans, strides)]
    ceil_hw = [-(-span // s) + 1 for span, s in zip(spans, strides)]
    if out_hw == floor_hw:
        pad_mode = 1
    elif out_hw == ceil_hw:
        pad_mode = 0
    else:
        raise cx.unsupported(f"cannot reproduce the output size {out_hw} of this pooling in ncnn")
    src = cx.logical_blob(node.input[0])
    if pad_mode == 0 and include_pad and any(pads):
        # ONNX counts the explicit pads but not ceil_mode's extra tail; ncnn's full mode counts both
        # or neither.  Make the explicit pads real zeros and count only what is inside them.
        padded = cx.fresh_blob(f"{node.output[0]}_padded")
        c, h, w = cx.nshape[src]
        cx.add("Padding", [src], [padded], {0: pads[0], 1: pads[2], 2: pads[1], 3: pads[3]},
               shapes=[(c, h + pads[0] + pads[2], w + pads[1] + pads[3])])
        src, pads, include_pad = padded, [0, 0, 0, 0], 0
    params = {0: 0 if is_max else 1, 1: kernel[1], 11: kernel[0], 2: strides[1], 12: strides[0],
              3: pads[1], 14: pads[3], 13: pads[0], 15: pads[2], 5: pad_mode}
    if not is_max:
        params[6] = include_pad
    cx.add("Pooling", [src], [node.output[0]], params)


@mapper("GlobalAveragePool", "GlobalMaxPool")
def global_pool(cx: Converter, node: onnx.NodeProto) -> None:
    """GlobalAveragePool / GlobalMaxPool -> Pooling ``4=1`` (ncnn gives a ``(c,)`` blob)."""
    shape = cx.logical(node.input[0])
    if len(shape) != 3:
        raise cx.unsupported(f"global pooling needs an NCHW input (shape {list(shape)})")
    cx.add("Pooling", [cx.logical_blob(node.input[0])], [node.output[0]],
           {0: 0 if node.op_type == "GlobalMaxPool" else 1, 4: 1}, shapes=[(shape[0],)])


@mapper("BatchNormalization")
def batch_norm(cx: Converter, node: onnx.NodeProto) -> None:
    """BatchNormalization (inference) -> BatchNorm with slope, mean, var, bias."""
    if any(o for o in node.output[1:]):
        raise cx.unsupported("BatchNormalization in training mode (extra outputs) is not supported")
    scale, bias, mean, var = (cx.input_const(node, i) for i in range(1, 5))
    if scale is None or bias is None or mean is None or var is None:
        raise cx.unsupported("BatchNormalization needs constant scale, bias, mean and var")
    eps = float(cx.attrs(node).get("epsilon", 1e-5))
    blob = cx.blob(node.input[0])
    cx.add("BatchNorm", [blob], [node.output[0]], {0: int(scale.size), 1: eps},
           {"slope": scale, "mean": mean, "var": var, "bias": bias}, shapes=[cx.nshape[blob]])


def _unary(cx: Converter, node: onnx.NodeProto, ltype: str, params: dict | None = None,
           weights: dict | None = None) -> None:
    blob = cx.blob(node.input[0])
    cx.add(ltype, [blob], [node.output[0]], params, weights, shapes=[cx.nshape[blob]])


@mapper("Relu")
def relu(cx: Converter, node: onnx.NodeProto) -> None:
    """Relu -> ReLU."""
    _unary(cx, node, "ReLU")


@mapper("LeakyRelu")
def leaky_relu(cx: Converter, node: onnx.NodeProto) -> None:
    """LeakyRelu -> ReLU with ``0=slope``."""
    _unary(cx, node, "ReLU", {0: float(cx.attrs(node).get("alpha", 0.01))})


@mapper("PRelu")
def prelu(cx: Converter, node: onnx.NodeProto) -> None:
    """PRelu with a per-channel or single slope -> PReLU; any other broadcast slope -> :func:`_broadcast_prelu`.

    A 1-D slope of the channel count that cannot broadcast along the last axis is per channel: the
    meaning of PRelu before opset 7, which ``onnx.version_converter`` keeps as it is.
    """
    slope = cx.input_const(node, 1)
    if slope is None:
        raise cx.unsupported("PRelu needs a constant slope")
    shape = cx.shape(node.input[0])
    rank = len(shape)
    padded = (1,) * (rank - slope.ndim) + tuple(slope.shape)
    flat = slope.reshape(-1)
    legacy = slope.ndim == 1 and rank >= 3 and flat.size == shape[1] != shape[-1]
    if flat.size != 1 and not legacy and not (rank >= 2 and padded[1] == flat.size):
        _broadcast_prelu(cx, node)
        return
    _unary(cx, node, "PReLU", {0: int(flat.size)}, {"slope": flat})


def _broadcast_prelu(cx: Converter, node: onnx.NodeProto) -> None:
    """PRelu with a slope that broadcasts along other axes than the channel: ``relu(x) + slope * min(x, 0)``
    as ReLU, Clip, BinaryOp mul and BinaryOp add."""
    out = node.output[0]
    blob = cx.blob(node.input[0])
    positive, negative, scaled = (cx.fresh_blob(f"{out}_{part}") for part in ("pos", "neg", "scaled"))
    cx.add("ReLU", [blob], [positive], shapes=[cx.nshape[blob]])
    cx.add("Clip", [blob], [negative], {0: -FLT_MAX, 1: 0.0}, shapes=[cx.nshape[blob]])
    for name in (positive, negative, scaled):
        cx.g.shapes[name] = cx.shape(node.input[0])
    binary_op(cx, negative, node.input[1], scaled, 2)
    binary_op(cx, positive, scaled, out, 0)


@mapper("Clip")
def clip(cx: Converter, node: onnx.NodeProto) -> None:
    """Clip (ReLU6 and friends) -> Clip; bounds from attributes (opset < 11) or constant inputs."""
    attrs = cx.attrs(node)
    lo, hi = attrs.get("min", -FLT_MAX), attrs.get("max", FLT_MAX)
    lo_in, hi_in = cx.input_const(node, 1), cx.input_const(node, 2)
    lo = float(lo_in) if lo_in is not None else float(lo)
    hi = float(hi_in) if hi_in is not None else float(hi)
    _unary(cx, node, "Clip", {0: lo, 1: hi})


@mapper("Sigmoid")
def sigmoid(cx: Converter, node: onnx.NodeProto) -> None:
    """Sigmoid -> Sigmoid."""
    _unary(cx, node, "Sigmoid")


@mapper("Tanh")
def tanh(cx: Converter, node: onnx.NodeProto) -> None:
    """Tanh -> TanH."""
    _unary(cx, node, "TanH")


@mapper("HardSigmoid")
def hard_sigmoid(cx: Converter, node: onnx.NodeProto) -> None:
    """HardSigmoid -> HardSigmoid with ONNX's alpha and beta."""
    attrs = cx.attrs(node)
    _unary(cx, node, "HardSigmoid", {0: float(attrs.get("alpha", 0.2)), 1: float(attrs.get("beta", 0.5))})


@mapper("HardSwish")
def hard_swish(cx: Converter, node: onnx.NodeProto) -> None:
    """HardSwish -> HardSwish ``x * clip(x / 6 + 0.5, 0, 1)``."""
    _unary(cx, node, "HardSwish", {0: 1.0 / 6.0, 1: 0.5})


@mapper("Dropout")
def dropout(cx: Converter, node: onnx.NodeProto) -> None:
    """Dropout (inference: identity) -> Dropout, as ncnn's converters keep it."""
    if len(node.output) > 1 and node.output[1]:
        raise cx.unsupported("Dropout's mask output is not supported")
    _unary(cx, node, "Dropout")


@mapper("Identity")
def identity(cx: Converter, node: onnx.NodeProto) -> None:
    """Identity -> nothing (its consumers read the input blob)."""
    cx.passthrough(node, cx.blob(node.input[0]))


def _dense(cx: Converter, node: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray | None) -> None:
    """InnerProduct with ``weight`` (num_output, num_input) on a (1, K) or (1, M, K) activation."""
    shape = cx.logical(node.input[0])
    if len(shape) not in (1, 2) or shape[-1] != weight.shape[1]:
        raise cx.unsupported(f"a dense layer on an input of shape {list(cx.shape(node.input[0]))} is not supported")
    params = {0: int(weight.shape[0]), 1: int(bias is not None), 2: int(weight.size)}
    weights = {"weight": weight}
    if bias is not None:
        weights["bias"] = bias
    cx.add("InnerProduct", [cx.logical_blob(node.input[0])], [node.output[0]], params, weights)


@mapper("Gemm")
def gemm(cx: Converter, node: onnx.NodeProto) -> None:
    """Gemm with a constant B -> InnerProduct (alpha and beta folded into the weights)."""
    attrs = cx.attrs(node)
    b = cx.input_const(node, 1)
    if b is None or b.ndim != 2:
        raise cx.unsupported("Gemm needs a constant 2-D B")
    if int(attrs.get("transA", 0)):
        raise cx.unsupported("Gemm with transA=1 is not supported (A must be the (1, K) activation)")
    weight = (b if int(attrs.get("transB", 0)) else b.T) * float(attrs.get("alpha", 1.0))
    c = cx.input_const(node, 2)
    bias = None
    if c is not None:
        bias = np.broadcast_to(c.astype(np.float32) * float(attrs.get("beta", 1.0)), (1, weight.shape[0]))
        bias = bias.reshape(-1)
    _dense(cx, node, weight, bias)


@mapper("MatMul")
def matmul(cx: Converter, node: onnx.NodeProto) -> None:
    """MatMul of a (1, K) or (1, M, K) activation by a constant 2-D matrix -> InnerProduct; any other
    MatMul (two activations, as in attention, or more leading axes) -> ncnn's MatMul, whose leading
    axes broadcast like numpy's."""
    a, b = node.input[0], node.input[1]
    b_const = cx.const(b)
    if cx.const(a) is None and b_const is not None and b_const.ndim == 2 and len(cx.logical(a)) <= 2:
        _dense(cx, node, b_const.T, None)
        return
    shapes = [cx.shape(a), cx.shape(b)]
    if min(len(s) for s in shapes) < 2:
        raise cx.unsupported("MatMul with a 1-D operand is not supported")
    blobs = []
    for name, shape in zip((a, b), shapes):
        value = cx.const(name)
        if value is not None:
            blobs.append(cx.const_blob(name, value.reshape(shape[1:] if shape[0] == 1 and len(shape) > 2 else shape)))
        else:
            if len(shape) < 3:
                raise cx.unsupported(f"MatMul operand {name!r} of shape {list(shape)}: its first axis is the batch")
            blobs.append(cx.logical_blob(name))
    cx.add("MatMul", blobs, [node.output[0]])
