"""ONNX Conv / MaxPool / AveragePool on 1-D (NCW) and 3-D (NCDHW) inputs -> ncnn's 1-D / 3-D layer types.

An NCW activation is the ncnn 2-D blob ``(c, w)``, an NCDHW one the 4-D blob ``(c, d, h, w)``.
ONNX lists pads as all begins then all ends, outermost axis first; ``auto_pad`` is resolved with the
static input size.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from ncnnc.frontends.onnx_convert import Converter

CONV_IDS = {1: {"kernel": (1,), "dilation": (2,), "stride": (3,), "begin": (4,), "end": (15,)},
            3: {"kernel": (21, 11, 1), "dilation": (22, 12, 2), "stride": (23, 13, 3), "begin": (24, 14, 4),
                "end": (17, 16, 15)}}
"""ncnn param ids of the N-D convolution types, per spatial axis outermost first."""
POOL_IDS = {1: {"kernel": (1,), "stride": (2,), "begin": (3,), "end": (14,)},
            3: {"kernel": (21, 11, 1), "stride": (22, 12, 2), "begin": (23, 13, 3), "end": (16, 15, 14)}}
"""ncnn param ids of Pooling1D / Pooling3D, per spatial axis outermost first."""


def window_pads(cx: Converter, attrs: dict, sizes: tuple[int, ...], kernel: list[int], strides: list[int],
                dilations: list[int]) -> tuple[list[int], list[int]]:
    """Explicit ``(begins, ends)`` for each spatial axis, resolving ``auto_pad`` with the static sizes."""
    n = len(sizes)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * 2 * n))
        if len(pads) != 2 * n:
            raise cx.unsupported(f"pads {pads} are not those of a {n}-D window")
        return pads[:n], pads[n:]
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise cx.unsupported(f"auto_pad {auto_pad!r} is not supported")
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins, ends


def _geometry(ids: dict, **values: list[int]) -> dict[int, int]:
    return {pid: int(v) for key, vals in values.items() for pid, v in zip(ids[key], vals)}


def _add_windowed(cx: Converter, node: onnx.NodeProto, kind: str, rank: int, group: int, params: dict[int, int],
                  weight: np.ndarray, bias: np.ndarray | None) -> None:
    """Add ``{kind}{rank}D`` (its ``DepthWise`` form, with ``7=group``, when ``group > 1``) reading the node's
    first input."""
    weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias.reshape(-1)}
    ltype = f"{kind}{rank}D"
    if group > 1:
        ltype = f"{kind}DepthWise{rank}D"
        params[7] = group
    cx.add(ltype, [cx.logical_blob(node.input[0])], [node.output[0]], params, weights)


def conv_nd(cx: Converter, node: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray | None) -> None:
    """Conv with a 3-D or 5-D weight -> Convolution1D/3D, or the depthwise form when ``group > 1``."""
    rank = weight.ndim - 2
    attrs = cx.attrs(node)
    group = int(attrs.get("group", 1))
    kernel = list(weight.shape[2:])
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    sizes = cx.shape(node.input[0])[2:]
    begins, ends = window_pads(cx, attrs, sizes, kernel, strides, dilations)
    params = {0: int(weight.shape[0]), 5: int(bias is not None), 6: int(weight.size),
              **_geometry(CONV_IDS[rank], kernel=kernel, dilation=dilations, stride=strides, begin=begins, end=ends)}
    _add_windowed(cx, node, "Convolution", rank, group, params, weight, bias)


def pool_nd(cx: Converter, node: onnx.NodeProto, kernel: list[int]) -> None:
    """MaxPool / AveragePool with a 1-D or 3-D kernel -> Pooling1D / Pooling3D.

    ONNX's output size picks ncnn's pad mode: floor is valid padding (1), ceil is full padding (0).
    """
    rank = len(kernel)
    attrs = cx.attrs(node)
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    sizes = cx.shape(node.input[0])[2:]
    begins, ends = window_pads(cx, attrs, sizes, kernel, strides, dilations)
    is_max = node.op_type == "MaxPool"
    if dilations != [1] * rank:
        if not is_max or rank != 1:
            raise cx.unsupported(f"pooling dilations {dilations} are not supported by ncnn's Pooling{rank}D")
        dilated_max_pool(cx, node, kernel, strides, dilations, begins, ends)
        return
    include_pad = int(attrs.get("count_include_pad", 0)) if not is_max else 0
    outs = list(cx.shape(node.output[0])[2:])
    spans = [size + b + e - k for size, b, e, k in zip(sizes, begins, ends, kernel)]
    if outs == [span // s + 1 for span, s in zip(spans, strides)]:
        pad_mode = 1
    elif outs == [-(-span // s) + 1 for span, s in zip(spans, strides)]:
        pad_mode = 0
    else:
        raise cx.unsupported(f"cannot reproduce the output size {outs} of this pooling in ncnn")
    if pad_mode == 0 and include_pad and any(begins + ends):
        raise cx.unsupported("ceil_mode with count_include_pad and pads is not supported for 1-D/3-D pooling")
    params = {0: 0 if is_max else 1, 5: pad_mode,
              **_geometry(POOL_IDS[rank], kernel=kernel, stride=strides, begin=begins, end=ends)}
    if include_pad:
        params[6] = 1
    cx.add(f"Pooling{rank}D", [cx.logical_blob(node.input[0])], [node.output[0]], params)


MAX_DILATED_TAPS = 256
"""A dilated max pool is built from one Crop + Pooling + BinaryOp per kernel tap and axis; at most this many
taps along one axis."""


def dilated_max_pool(cx: Converter, node: onnx.NodeProto, kernel: list[int], strides: list[int],
                     dilations: list[int], begins: list[int], ends: list[int]) -> None:
    """MaxPool with dilations on NCW / NCHW -> maxima of strided crops, one axis after the other, exactly.

    ncnn's pooling has no dilation, but a max pool is separable, and along one axis a dilated max pool
    is the maximum over its kernel taps of strided views of the input: each tap is a Crop of the
    ``-FLT_MAX``-padded input, subsampled by a 1-wide Pooling of the pool's stride, and BinaryOp max
    combines them (``sum(kernel)`` taps in all).
    """
    from ncnnc.core.layer_types import FLT_MAX

    rank = len(kernel)
    if max(kernel) > MAX_DILATED_TAPS:
        raise cx.unsupported(f"pooling dilations {dilations} with a kernel {kernel} longer than {MAX_DILATED_TAPS} "
                             "taps along one axis are not supported")
    src = cx.logical_blob(node.input[0])
    shape = cx.nshape[src]
    sizes, outs = list(shape[1:]), list(cx.shape(node.output[0])[2:])
    # pad so that every tap's last position exists (ceil_mode windows may reach past the pads)
    need = [(k - 1) * d + s * (o - 1) + 1 for k, d, s, o in zip(kernel, dilations, strides, outs)]
    after = [max(e, n - b - size) for n, b, e, size in zip(need, begins, ends, sizes)]
    current = [b + size + a for b, size, a in zip(begins, sizes, after)]
    if any(begins) or any(after):
        padded = cx.fresh_blob(f"{node.output[0]}_padded")
        ids = {1: ((2, 3),), 2: ((0, 1), (2, 3))}[rank]
        params = {4: 0, 5: -FLT_MAX}
        for (lo_id, hi_id), b, a in zip(ids, begins, after):
            params[lo_id], params[hi_id] = b, a
        cx.add("Padding", [src], [padded], params, shapes=[(shape[0], *current)])
        src = padded
    for axis in range(rank):
        last_axis = axis == rank - 1
        current[axis] = outs[axis]
        reduced = (shape[0], *current)
        acc = None
        for t in range(kernel[axis]):
            start = t * dilations[axis]
            stop = start + strides[axis] * (outs[axis] - 1) + 1
            base = f"{node.output[0]}_axis{axis}_tap{t}"
            crop = cx.fresh_blob(base)
            cropped = list(cx.nshape[src])
            cropped[axis + 1] = stop - start
            cx.add("Crop", [src], [crop], {9: [start], 10: [stop], 11: [axis + 1]}, shapes=[tuple(cropped)])
            picked = cx.fresh_blob(f"{base}_strided")
            if rank == 1:
                cx.add("Pooling1D", [crop], [picked], {0: 0, 1: 1, 2: strides[0], 5: 1}, shapes=[reduced])
            else:
                stride = {2: strides[1], 12: 1} if axis == 1 else {2: 1, 12: strides[0]}
                cx.add("Pooling", [crop], [picked], {0: 0, 1: 1, 11: 1, **stride, 5: 1}, shapes=[reduced])
            if acc is None:
                acc = picked
                continue
            final = last_axis and t == kernel[axis] - 1
            target = node.output[0] if final else cx.fresh_blob(f"{base}_max")
            cx.add("BinaryOp", [acc, picked], [target], {0: 4}, shapes=[reduced])
            acc = target
        src = acc  # type: ignore[assignment]
    if src != node.output[0]:  # the last axis had a 1-tap kernel
        cx.add("Noop", [src], [node.output[0]], shapes=[(shape[0], *outs)])


def conv_transpose_nd(cx: Converter, node: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray | None) -> None:
    """ConvTranspose with a 3-D or 5-D weight -> Deconvolution1D/3D, or the depthwise form when ``group > 1``.

    ONNX weights ``(cin, cout/group, *kernel)`` are stored output-major per group, as ncnn reads them.
    """
    rank = weight.ndim - 2
    attrs = cx.attrs(node)
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "") or "output_shape" in attrs:
        raise cx.unsupported("ConvTranspose with auto_pad or output_shape is not supported; give explicit pads")
    group = int(attrs.get("group", 1))
    cin, cout_g, *kernel = weight.shape
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    pads = list(attrs.get("pads", [0] * 2 * rank))
    out_pads = list(attrs.get("output_padding", [0] * rank))
    params = {0: group * cout_g, 5: int(bias is not None), 6: int(weight.size),
              **_geometry(CONV_IDS[rank], kernel=kernel, dilation=dilations, stride=strides, begin=pads[:rank],
                          end=pads[rank:]),
              **dict(zip((20, 19, 18) if rank == 3 else (18,), out_pads))}
    reordered = weight.reshape(group, cin // group, cout_g, *kernel).swapaxes(1, 2)
    _add_windowed(cx, node, "Deconvolution", rank, group, params,
                  reordered.reshape(group * cout_g, cin // group, *kernel), bias)
