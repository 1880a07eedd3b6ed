"""ONNX operators that combine or rearrange tensors: arithmetic, reshapes, slicing, padding, resizing."""

from __future__ import annotations

import itertools

import numpy as np
import onnx

from ncnnc.frontends.onnx_convert import Converter, mapper, reshape_params

BINARY_OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3}
REVERSED_OPS = {0: 0, 1: 7, 2: 2, 3: 8, 4: 4, 5: 5, 6: 9}
"""ncnn BinaryOp op_type with the operands swapped (Sub -> rsub, Div -> rdiv, Pow -> rpow)."""

PERMUTE_ORDER = {(0, 1): 0, (1, 0): 1} | {perm: order for dims in (3, 4)
                                          for order, perm in enumerate(itertools.permutations(range(dims)))}
"""ncnn Permute order_type for a permutation of the (h, w), (c, h, w) or (c, d, h, w) axes in numpy order
(lexicographic, as :data:`ncnnc.core.shapes.PERMUTES`)."""


def _attr_or_input(cx: Converter, node: onnx.NodeProto, attr: str, index: int, default=None):
    """An argument that older opsets give as an attribute and newer ones as a constant input."""
    attrs = cx.attrs(node)
    if attr in attrs:
        return attrs[attr]
    value = cx.input_const(node, index)
    return default if value is None else value.tolist()


@mapper("Add", "Sub", "Mul", "Div")
def binary(cx: Converter, node: onnx.NodeProto) -> None:
    """Add/Sub/Mul/Div -> BinaryOp: a scalar constant uses ``with_scalar``, a tensor constant a MemoryData.

    Both operands are brought to the output's rank (numpy broadcasting, leading 1s) so that ncnn's
    same-rank broadcasting applies.
    """
    binary_op(cx, node.input[0], node.input[1], node.output[0], BINARY_OPS[node.op_type])


def binary_op(cx: Converter, a: str, b: str, out: str, op: int) -> None:
    """``out = a op b`` as one BinaryOp (ncnn ``0=op_type``), broadcasting as ONNX does."""
    ca, cb = cx.const(a), cx.const(b)
    if cb is not None and cb.size == 1:
        blob = cx.blob(a)
        cx.add("BinaryOp", [blob], [out], {0: op, 1: 1, 2: float(cb.reshape(-1)[0])}, shapes=[cx.nshape[blob]])
        return
    if ca is not None and ca.size == 1 and op in REVERSED_OPS:
        blob = cx.blob(b)
        cx.add("BinaryOp", [blob], [out], {0: REVERSED_OPS[op], 1: 1, 2: float(ca.reshape(-1)[0])},
               shapes=[cx.nshape[blob]])
        return
    out_shape = cx.logical(out)
    blobs = []
    for name, value in ((a, ca), (b, cb)):
        shape = cx.shape(name)
        padded = (1,) * (len(out_shape) + 1 - len(shape)) + tuple(shape)
        if padded[0] != 1:
            raise cx.unsupported(f"operand {name!r} of shape {list(shape)} broadcasts over the batch axis")
        target = padded[1:] or (1,)
        if value is not None:
            blobs.append(cx.const_blob(name, value.reshape(target)))
        else:
            blobs.append(cx.blob_as(name, target))
    cx.add("BinaryOp", blobs, [out], {0: op})


def _view(cx: Converter, node: onnx.NodeProto) -> None:
    """Output = input data in a new shape: Reshape (nothing when the ncnn layout already matches)."""
    blob = cx.blob(node.input[0])
    target = cx.logical(node.output[0])
    if cx.nshape[blob] == target:
        cx.passthrough(node, blob)
    elif len(target) == 1 and node.op_type == "Flatten":
        cx.add("Flatten", [blob], [node.output[0]])
    else:
        cx.add("Reshape", [blob], [node.output[0]], reshape_params(target))


@mapper("Flatten")
def flatten(cx: Converter, node: onnx.NodeProto) -> None:
    """Flatten -> Flatten (or Reshape when the result is not 1-D)."""
    _view(cx, node)


@mapper("Reshape", "Squeeze", "Unsqueeze")
def reshape(cx: Converter, node: onnx.NodeProto) -> None:
    """Reshape/Squeeze/Unsqueeze -> Reshape to the statically inferred output shape."""
    _view(cx, node)


@mapper("Transpose")
def transpose(cx: Converter, node: onnx.NodeProto) -> None:
    """Transpose keeping the batch axis first -> Permute."""
    rank = len(cx.shape(node.input[0]))
    perm = list(cx.attrs(node).get("perm", reversed(range(rank))))
    if perm[0] != 0:
        raise cx.unsupported(f"Transpose perm {perm} moves the batch axis")
    inner = tuple(p - 1 for p in perm[1:])
    if inner == tuple(range(len(inner))):
        cx.passthrough(node, cx.logical_blob(node.input[0]))
        return
    if inner not in PERMUTE_ORDER:
        raise cx.unsupported(f"Transpose perm {perm} is not supported (ncnn Permute handles 2-D to 4-D blobs)")
    cx.add("Permute", [cx.logical_blob(node.input[0])], [node.output[0]], {0: PERMUTE_ORDER[inner]})


@mapper("Concat")
def concat(cx: Converter, node: onnx.NodeProto) -> None:
    """Concat -> Concat on the ncnn axis."""
    rank = len(cx.shape(node.output[0]))
    axis = cx.axis(int(cx.attrs(node)["axis"]), rank)
    blobs = [cx.blob_as(name, cx.shape(name)[1:]) if cx.const(name) is None else
             cx.const_blob(name, cx.const(name).reshape(cx.shape(name)[1:]))  # type: ignore[union-attr]
             for name in node.input if name]
    cx.add("Concat", blobs, [node.output[0]], {0: axis})


@mapper("Split")
def split(cx: Converter, node: onnx.NodeProto) -> None:
    """Split -> Slice with the statically known output sizes."""
    rank = len(cx.shape(node.input[0]))
    raw_axis = int(cx.attrs(node).get("axis", 0))
    axis = cx.axis(raw_axis, rank)
    sizes = [cx.shape(o)[raw_axis] for o in node.output]
    cx.add("Slice", [cx.logical_blob(node.input[0])], list(node.output), {0: sizes, 1: axis})


@mapper("Slice")
def slice_(cx: Converter, node: onnx.NodeProto) -> None:
    """Slice -> Crop with explicit starts/ends/axes; steps > 1 on H and W add a strided 1x1 Pooling."""
    shape = cx.shape(node.input[0])
    rank = len(shape)
    if cx.opset < 10:
        attrs = cx.attrs(node)
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = cx.input_const(node, 1).tolist()  # type: ignore[union-attr]
        ends = cx.input_const(node, 2).tolist()  # type: ignore[union-attr]
        axes_in, steps_in = cx.input_const(node, 3), cx.input_const(node, 4)
        axes = axes_in.tolist() if axes_in is not None else list(range(len(starts)))
        steps = steps_in.tolist() if steps_in is not None else [1] * len(starts)
    n_starts, n_ends, n_axes, strides = [], [], [], {}
    for start, end, axis, step in zip(starts, ends, axes, steps):
        a = axis + rank if axis < 0 else axis
        if step < 1:
            raise cx.unsupported(f"Slice with step {step} is not supported")
        size = shape[a]
        lo = min(max(start + size if start < 0 else start, 0), size)
        hi = min(max(end + size if end < 0 else end, 0), size)
        if a == 0:
            if (lo, hi) != (0, 1):
                raise cx.unsupported("Slice on the batch axis is not supported")
            continue
        if step > 1:
            count = len(range(lo, hi, step))
            hi = lo + step * (count - 1) + 1 if count else lo
            strides[a - 1] = step
        n_starts.append(lo)
        n_ends.append(hi)
        n_axes.append(a - 1)
    blob = cx.logical_blob(node.input[0])
    if not n_axes or all((lo, hi) == (0, shape[a + 1]) for lo, hi, a in zip(n_starts, n_ends, n_axes)):
        cx.passthrough(node, blob)
        return
    if not strides:
        cx.add("Crop", [blob], [node.output[0]], {9: n_starts, 10: n_ends, 11: n_axes})
        return
    _strided_slice(cx, node, blob, n_starts, n_ends, n_axes, strides)


def _strided_slice(cx: Converter, node: onnx.NodeProto, blob: str, starts: list[int], ends: list[int],
                   axes: list[int], strides: dict[int, int]) -> None:
    """Slice with steps > 1 along h and w: Crop to the first..last picked position, then a 1x1 max
    Pooling with the steps as strides picks every step-th position (exact)."""
    dims = len(cx.nshape[blob])
    image_strides = {a + 3 - dims: step for a, step in strides.items()}  # axes of the blob seen as (c, h, w)
    if dims > 3 or 0 in image_strides:
        raise cx.unsupported(f"Slice with steps {list(strides.values())} is supported on the H and W axes only")
    cropped_shape = list(cx.nshape[blob])
    for lo, hi, a in zip(starts, ends, axes):
        cropped_shape[a] = hi - lo
    cropped = cx.fresh_blob(f"{node.output[0]}_cropped")
    cx.add("Crop", [blob], [cropped], {9: starts, 10: ends, 11: axes}, shapes=[tuple(cropped_shape)])
    image = (1,) * (3 - dims) + tuple(cropped_shape)
    src = cx.blob_as(cropped, image)
    sh, sw = image_strides.get(1, 1), image_strides.get(2, 1)
    out_image = (image[0], (image[1] - 1) // sh + 1, (image[2] - 1) // sw + 1)
    picked = cx.fresh_blob(f"{node.output[0]}_strided") if dims < 3 else node.output[0]
    cx.add("Pooling", [src], [picked], {0: 0, 1: 1, 11: 1, 2: sw, 12: sh, 5: 1}, shapes=[out_image])
    if dims < 3:
        cx.add("Reshape", [picked], [node.output[0]], reshape_params(cx.logical(node.output[0])))


PAD_MODES = {"constant": 0, "edge": 1, "reflect": 2}


@mapper("Pad")
def pad(cx: Converter, node: onnx.NodeProto) -> None:
    """Pad (constant, edge, reflect) -> Padding; channel pads use ``front``/``behind``."""
    attrs = cx.attrs(node)
    shape = cx.shape(node.input[0])
    rank = len(shape)
    mode = attrs.get("mode", "constant")
    if mode not in PAD_MODES:
        raise cx.unsupported(f"Pad mode {mode!r} is not supported")
    pads = list(attrs["pads"]) if "pads" in attrs else cx.input_const(node, 1).tolist()  # type: ignore[union-attr]
    value = float(attrs.get("value", 0.0))
    if cx.opset >= 11 and cx.input_const(node, 2) is not None:
        value = float(cx.input_const(node, 2).reshape(-1)[0])  # type: ignore[union-attr]
    axes_in = cx.input_const(node, 3) if cx.opset >= 18 else None
    axes = [a + rank if a < 0 else a for a in axes_in.tolist()] if axes_in is not None else list(range(rank))
    begin, end = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[i + len(axes)]
    if min(begin + end) < 0:
        raise cx.unsupported(f"negative pads {pads} are not supported")
    if begin[0] or end[0]:
        raise cx.unsupported("padding the batch axis is not supported")
    names = {4: ((7, 8), (0, 1), (2, 3)), 3: ((0, 1), (2, 3)), 2: ((2, 3),)}
    if rank not in names:
        raise cx.unsupported(f"Pad on a rank-{rank} tensor is not supported")
    params: dict = {4: PAD_MODES[mode], 5: value}
    for (lo_id, hi_id), a in zip(names[rank], range(1, rank)):
        if begin[a] or end[a]:
            params[lo_id], params[hi_id] = begin[a], end[a]
    if mode != "constant" and (params.get(7) or params.get(8)):
        raise cx.unsupported(f"Pad mode {mode!r} on the channel axis is not supported")
    cx.add("Padding", [cx.logical_blob(node.input[0])], [node.output[0]], params)


@mapper("Resize", "Upsample")
def resize(cx: Converter, node: onnx.NodeProto) -> None:
    """Resize/Upsample of H and W -> Interp (nearest, bilinear or bicubic) with the static output size."""
    attrs = cx.attrs(node)
    in_shape, out_shape = cx.shape(node.input[0]), cx.shape(node.output[0])
    if len(in_shape) != 4 or in_shape[:2] != out_shape[:2]:
        raise cx.unsupported(f"only resizing H and W of NCHW tensors is supported ({list(in_shape)} -> "
                             f"{list(out_shape)})")
    if int(attrs.get("antialias", 0)):
        raise cx.unsupported("Resize with antialias is not supported")
    mode = attrs.get("mode", "nearest")
    default_ct = "asymmetric" if node.op_type == "Upsample" or cx.opset < 11 else "half_pixel"
    ct = attrs.get("coordinate_transformation_mode", default_ct)
    integer_scale = all(o % i == 0 for i, o in zip(in_shape[2:], out_shape[2:]))
    if mode == "nearest":
        nearest = attrs.get("nearest_mode", "round_prefer_floor" if cx.opset >= 11 else "floor")
        ok = (ct == "asymmetric" and nearest == "floor") or (
            integer_scale and ct in ("asymmetric", "half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn")
            and nearest in ("floor", "round_prefer_floor"))
        if not ok:
            raise cx.unsupported(f"nearest Resize with {ct} / {nearest} is not supported")
        resize_type, align = 1, 0
    elif mode in ("linear", "bilinear", "cubic"):
        if ct == "align_corners":
            align = 1
        elif ct in ("half_pixel", "pytorch_half_pixel"):
            align = 0
        else:
            raise cx.unsupported(f"{mode} Resize with coordinate_transformation_mode {ct!r} is not supported")
        if mode == "cubic" and (float(attrs.get("cubic_coeff_a", -0.75)) != -0.75
                                or int(attrs.get("exclude_outside", 0))):
            raise cx.unsupported("cubic Resize is supported with cubic_coeff_a=-0.75 and exclude_outside=0 only")
        resize_type = 3 if mode == "cubic" else 2
    else:
        raise cx.unsupported(f"Resize mode {mode!r} is not supported")
    params = {0: resize_type, 3: out_shape[2], 4: out_shape[3]}
    if align:
        params[6] = 1
    cx.add("Interp", [cx.logical_blob(node.input[0])], [node.output[0]], params)


@mapper("Softmax")
def softmax(cx: Converter, node: onnx.NodeProto) -> None:
    """Softmax -> Softmax on one ncnn axis (opset < 13 flattens the trailing axes first)."""
    shape = cx.shape(node.input[0])
    rank = len(shape)
    raw = int(cx.attrs(node).get("axis", -1 if cx.opset >= 13 else 1))
    a = raw + rank if raw < 0 else raw
    if cx.opset < 13 and a < rank - 1:
        a = max(a, 1)
        big = [i for i in range(a, rank) if shape[i] != 1]
        if len(big) > 1:
            flat = cx.blob_as(node.input[0], (*shape[1:a], int(np.prod(shape[a:]))))
            mid = cx.fresh_blob(f"{node.output[0]}_flat")
            cx.add("Softmax", [flat], [mid], {0: a - 1, 1: 1}, shapes=[cx.nshape[flat]])
            cx.add("Reshape", [mid], [node.output[0]], reshape_params(cx.logical(node.output[0])))
            return
        a = big[0] if big else a
    cx.add("Softmax", [cx.logical_blob(node.input[0])], [node.output[0]], {0: cx.axis(a, rank), 1: 1})


REDUCE_OPS = {"ReduceSum": 0, "ReduceSumSquare": 2, "ReduceMean": 3, "ReduceMax": 4, "ReduceMin": 5,
              "ReduceProd": 6, "ReduceL1": 7, "ReduceL2": 8, "ReduceLogSum": 9, "ReduceLogSumExp": 10}
"""ONNX reduction -> ncnn Reduction ``0=operation``."""


@mapper(*REDUCE_OPS)
def reduce(cx: Converter, node: onnx.NodeProto) -> None:
    """ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare over non-batch axes -> Reduction."""
    shape = cx.shape(node.input[0])
    rank = len(shape)
    attrs = cx.attrs(node)
    axes = _attr_or_input(cx, node, "axes", 1, None)
    keepdims = int(attrs.get("keepdims", 1))
    if axes is None or len(axes) == 0:
        if int(attrs.get("noop_with_empty_axes", 0)):
            cx.passthrough(node, cx.blob(node.input[0]))
            return
        axes = list(range(1, rank))
    norm = sorted({a + rank if a < 0 else a for a in axes})
    if 0 in norm:
        if keepdims:
            norm.remove(0)
        else:
            raise cx.unsupported(f"{node.op_type} over the batch axis without keepdims is not supported")
    params = {0: REDUCE_OPS[node.op_type], 1: 0, 3: [a - 1 for a in norm], 4: keepdims, 5: 1}
    cx.add("Reduction", [cx.logical_blob(node.input[0])], [node.output[0]], params)


@mapper("DepthToSpace")
def depth_to_space(cx: Converter, node: onnx.NodeProto) -> None:
    """DepthToSpace (also a folded pixel-shuffle chain) -> PixelShuffle, mode CRD -> 0, DCR -> 1."""
    attrs = cx.attrs(node)
    if len(cx.logical(node.input[0])) != 3:
        raise cx.unsupported("DepthToSpace needs an NCHW input")
    mode = {"CRD": 0, "DCR": 1}[attrs.get("mode", "DCR")]
    cx.add("PixelShuffle", [cx.logical_blob(node.input[0])], [node.output[0]],
           {0: int(attrs["blocksize"]), 1: mode})


@mapper("ShuffleChannel")
def shuffle_channel(cx: Converter, node: onnx.NodeProto) -> None:
    """A channel-shuffle chain (``ncnnc`` domain, from :mod:`~ncnnc.frontends.onnx_patterns`) -> ShuffleChannel."""
    cx.add("ShuffleChannel", [cx.logical_blob(node.input[0])], [node.output[0]], {0: int(cx.attrs(node)["group"])})
