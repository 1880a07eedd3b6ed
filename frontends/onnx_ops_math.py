"""ONNX element-wise math and activations: UnaryOp functions, ELU/SELU/CELU, Softplus, Softsign, Shrink,
Erf, Pow, variadic Max/Min/Sum/Mean, LogSoftmax and InstanceNormalization."""

from __future__ import annotations

import numpy as np
import onnx

from ncnnc.frontends.onnx_convert import Converter, mapper
from ncnnc.frontends.onnx_ops_tensor import binary_op, softmax

UNARY_OPS = {"Abs": 0, "Neg": 1, "Floor": 2, "Ceil": 3, "Sqrt": 5, "Exp": 7, "Log": 8, "Sin": 9, "Cos": 10,
             "Tan": 11, "Asin": 12, "Acos": 13, "Atan": 14, "Reciprocal": 15, "Round": 18, "Sign": 20, "Sinh": 22,
             "Asinh": 23, "Cosh": 24, "Acosh": 25, "Atanh": 26}
"""ONNX operator -> ncnn UnaryOp ``0=op_type``."""


def _same_shape(cx: Converter, node: onnx.NodeProto, ltype: str, params: dict | None = None,
                src: str | None = None, out: str | None = None) -> str:
    blob = cx.blob(src or node.input[0])
    target = out or node.output[0]
    cx.add(ltype, [blob], [target], params, shapes=[cx.nshape[blob]])
    return target


@mapper(*UNARY_OPS)
def unary(cx: Converter, node: onnx.NodeProto) -> None:
    """Abs, Neg, Sqrt, Exp, Log, the trigonometric functions, Reciprocal, Round, Sign ... -> UnaryOp."""
    _same_shape(cx, node, "UnaryOp", {0: UNARY_OPS[node.op_type]})


@mapper("Elu")
def elu(cx: Converter, node: onnx.NodeProto) -> None:
    """Elu -> ELU with ``0=alpha``."""
    _same_shape(cx, node, "ELU", {0: float(cx.attrs(node).get("alpha", 1.0))})


@mapper("Selu")
def selu(cx: Converter, node: onnx.NodeProto) -> None:
    """Selu -> SELU with ``0=alpha 1=lambda`` (ONNX's gamma)."""
    attrs = cx.attrs(node)
    _same_shape(cx, node, "SELU", {0: float(attrs.get("alpha", 1.67326319217681884765625)),
                                   1: float(attrs.get("gamma", 1.05070102214813232421875))})


@mapper("Celu")
def celu(cx: Converter, node: onnx.NodeProto) -> None:
    """Celu -> CELU with ``0=alpha``."""
    _same_shape(cx, node, "CELU", {0: float(cx.attrs(node).get("alpha", 1.0))})


@mapper("Softplus")
def softplus(cx: Converter, node: onnx.NodeProto) -> None:
    """Softplus -> Softplus."""
    _same_shape(cx, node, "Softplus")


@mapper("Erf")
def erf(cx: Converter, node: onnx.NodeProto) -> None:
    """Erf -> Erf."""
    _same_shape(cx, node, "Erf")


@mapper("Shrink")
def shrink(cx: Converter, node: onnx.NodeProto) -> None:
    """Shrink -> Shrink with ``0=bias 1=lambd``."""
    attrs = cx.attrs(node)
    _same_shape(cx, node, "Shrink", {0: float(attrs.get("bias", 0.0)), 1: float(attrs.get("lambd", 0.5))})


@mapper("Softsign")
def softsign(cx: Converter, node: onnx.NodeProto) -> None:
    """Softsign ``x / (1 + |x|)`` -> UnaryOp abs, BinaryOp add 1, BinaryOp div."""
    out = node.output[0]
    absolute = _same_shape(cx, node, "UnaryOp", {0: 0}, out=cx.fresh_blob(f"{out}_abs"))
    denom = cx.fresh_blob(f"{out}_denom")
    cx.add("BinaryOp", [absolute], [denom], {0: 0, 1: 1, 2: 1.0}, shapes=[cx.nshape[absolute]])
    cx.add("BinaryOp", [cx.blob(node.input[0]), denom], [out], {0: 3}, shapes=[cx.nshape[absolute]])


POWER_UNARY = {2.0: 4, 0.5: 5, -0.5: 6, -1.0: 15}
"""Constant exponents with an exact UnaryOp: square, sqrt, rsqrt, reciprocal."""


@mapper("Pow")
def power(cx: Converter, node: onnx.NodeProto) -> None:
    """Pow with a constant scalar exponent -> UnaryOp (2, 0.5, -0.5, -1), nothing (1) or BinaryOp pow.

    ncnn's pow is ``exp(b * log(a))``: for a negative base it gives a large finite number where ONNX
    gives NaN (or, for an integer exponent, the exact power).  So an exponent computed at run time
    is refused, and a constant one other than those above is exact for positive bases only.
    """
    exponent = cx.const(node.input[1])
    if exponent is None or exponent.size != 1:
        raise cx.unsupported("Pow with an exponent computed at run time is not supported (ncnn's pow is "
                             "exp(b*log(a)), which differs from ONNX for negative bases)")
    e = float(exponent.reshape(-1)[0])
    if e == 1.0:
        cx.passthrough(node, cx.blob(node.input[0]))
    elif e in POWER_UNARY:
        _same_shape(cx, node, "UnaryOp", {0: POWER_UNARY[e]})
    else:
        binary_op(cx, node.input[0], node.input[1], node.output[0], 6)


VARIADIC = {"Max": 4, "Min": 5, "Sum": 0, "Mean": 0}


@mapper(*VARIADIC)
def variadic(cx: Converter, node: onnx.NodeProto) -> None:
    """Max/Min/Sum/Mean of any number of inputs -> a chain of BinaryOp (Mean: then times 1/n)."""
    op = VARIADIC[node.op_type]
    names = [n for n in node.input if n]
    out = node.output[0]
    if len(names) == 1 and node.op_type != "Mean":
        cx.passthrough(node, cx.blob(names[0]))
        return
    acc = names[0]
    last = len(names) - 1 if node.op_type != "Mean" else len(names)
    for i, name in enumerate(names[1:], start=1):
        target = out if i == last else cx.fresh_blob(f"{out}_{i}")
        cx.g.shapes[target] = tuple(np.broadcast_shapes(cx.shape(acc), cx.shape(name)))
        binary_op(cx, acc, name, target, op)
        acc = target
    if node.op_type == "Mean":
        blob = cx.blob(acc)
        cx.add("BinaryOp", [blob], [out], {0: 2, 1: 1, 2: 1.0 / len(names)}, shapes=[cx.nshape[blob]])


@mapper("LogSoftmax")
def log_softmax(cx: Converter, node: onnx.NodeProto) -> None:
    """LogSoftmax -> Softmax then UnaryOp log (where the softmax underflows to 0 this gives -inf)."""
    mid = cx.fresh_blob(f"{node.output[0]}_softmax")
    cx.g.shapes[mid] = cx.shape(node.output[0])
    inner = onnx.NodeProto()
    inner.CopyFrom(node)
    inner.op_type = "Softmax"
    inner.output[0] = mid
    softmax(cx, inner)
    _same_shape(cx, node, "UnaryOp", {0: 8}, src=mid)


@mapper("InstanceNormalization")
def instance_norm(cx: Converter, node: onnx.NodeProto) -> None:
    """InstanceNormalization on NCHW (NCW seen as one row per channel) -> InstanceNorm with gamma, beta."""
    scale, bias = cx.input_const(node, 1), cx.input_const(node, 2)
    if scale is None or bias is None:
        raise cx.unsupported("InstanceNormalization needs a constant scale and bias")
    shape = cx.logical(node.input[0])
    if len(shape) not in (2, 3):
        raise cx.unsupported(f"InstanceNormalization of a rank-{len(shape) + 1} tensor is not supported")
    image = shape if len(shape) == 3 else (shape[0], 1, shape[1])
    eps = float(cx.attrs(node).get("epsilon", 1e-5))
    cx.add("InstanceNorm", [cx.blob_as(node.input[0], image)], [node.output[0]],
           {0: int(scale.size), 1: eps, 2: 1}, {"gamma": scale.reshape(-1), "beta": bias.reshape(-1)},
           shapes=[image])
