"""Converting a model exported with a fixed batch N > 1 at batch 1, when its batch items never mix.

ncnn runs one item at a time.  A model whose inputs have batch N is converted at batch 1 when it
computes each batch item on its own, which is checked in two parts on the folded graph:

1. **shapes**: every tensor computed from a batched input has the static shape ``(N, d1, ...)``
   at batch N and ``(1, d1, ...)`` at batch 1 (this catches reshapes, concatenations, splits,
   broadcasts and reductions that move or merge the batch axis);
2. **nodes**: every node reading a batched tensor is one of :data:`PER_ITEM` (element-wise,
   windowed, per-sample normalisation, reshaping ...), or an axis operator whose axes exclude
   axis 0 (softmax, reductions, gather, slice, transpose ...), or a matrix product whose batched
   operand is the left one.

Anything else is refused with the name of the first node that breaks the rule.
"""

from __future__ import annotations

import sys

import onnx
from onnx import helper

from ncnnc.core.errors import UnsupportedError
from ncnnc.frontends.onnx_fold import FoldedGraph, fold, node_label

PER_ITEM = frozenset({
    "Abs", "Acos", "Acosh", "Add", "And", "Asin", "Asinh", "Atan", "Atanh", "AveragePool", "BatchNormalization",
    "Cast", "Ceil", "Celu", "Clip", "Conv", "ConvTranspose", "Cos", "Cosh", "DepthToSpace", "Div", "Dropout", "Elu",
    "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gelu", "GlobalAveragePool", "GlobalLpPool",
    "GlobalMaxPool", "Greater", "GreaterOrEqual", "GroupNormalization", "HardSigmoid", "HardSwish", "Identity",
    "InstanceNormalization", "IsInf", "IsNaN", "LRN", "LeakyRelu", "Less", "LessOrEqual", "Log", "LpPool", "Max",
    "MaxPool", "Mean", "Min", "Mish", "Mod", "Mul", "Neg", "Not", "Or", "PRelu", "Pad", "Pow", "Reciprocal", "Relu",
    "Reshape", "Resize", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign",
    "SpaceToDepth", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile", "Unsqueeze",
    "Upsample", "Where", "Xor",
})
"""Operators that compute each batch item from that item alone (given the shape check above)."""

AXIS_DEFAULTS = {"Softmax": -1, "LogSoftmax": -1, "Hardmax": -1, "ArgMax": 0, "ArgMin": 0, "TopK": -1,
                 "Gather": 0, "GatherElements": 0, "LayerNormalization": -1, "LpNormalization": -1,
                 "Compress": None, "Concat": None, "Split": 0, "CumSum": None}
"""Operators working along one ``axis`` attribute (its default): per item when the axis is not 0."""

REDUCTIONS = frozenset({"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                        "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})

NOT_BATCHED = frozenset({"Shape", "Size"})
"""Operators whose output does not carry the batch (a shape is folded to a constant at each batch)."""


def fold_at_batch_one(model: onnx.ModelProto, input_shapes: dict[str, tuple], opset: int,
                      path: str) -> tuple[FoldedGraph, int]:
    """Fold the model at batch 1; with a fixed batch N > 1, check first that items never mix.

    Returns the folded graph and the model's batch N (1 when every input has batch 1).  The model's
    input types are rewritten to batch 1.
    """
    batches = {name: shape[0] for name, shape in input_shapes.items() if shape and shape[0] != 1}
    if not batches:
        return fold(model, input_shapes, opset, path), 1
    sizes = sorted(set(batches.values()))
    if len(sizes) > 1:
        shown = ", ".join(f"{k}: {v}" for k, v in batches.items())
        raise UnsupportedError(f"inputs have different fixed batch sizes ({shown}); ncnn models take batch 1", path)
    n = sizes[0]
    at_n = fold(model, input_shapes, opset, path)
    one = {name: (1, *shape[1:]) if name in batches else shape for name, shape in input_shapes.items()}
    _set_input_shapes(model, one)
    at_one = fold(model, one, opset, path)
    _check_items_apart(at_n, at_one, set(batches), n, path)
    return at_one, n


def note_batch(path: str, n: int) -> None:
    """The one stderr line saying that a model of fixed batch ``n`` was converted at batch 1."""
    print(f"{path}: note: the model's fixed batch {n} is converted at batch 1 (no node mixes batch items)",
          file=sys.stderr)


def _set_input_shapes(model: onnx.ModelProto, shapes: dict[str, tuple]) -> None:
    for vi in model.graph.input:
        if vi.name in shapes:
            tensor_type = vi.type.tensor_type
            tensor_type.ClearField("shape")
            for d in shapes[vi.name]:
                tensor_type.shape.dim.add().dim_value = int(d)


def _check_items_apart(at_n: FoldedGraph, at_one: FoldedGraph, inputs: set[str], n: int, path: str) -> None:
    batched = set(inputs)
    for index, node in enumerate(at_n.nodes):
        reads = [i for i, name in enumerate(node.input) if name in batched]
        if not reads or node.op_type in NOT_BATCHED:
            continue
        where = node_label(node, index)
        reason = _mixing_reason(node, reads, at_n, at_one.opset)
        if reason:
            raise UnsupportedError(f"the model has a fixed batch {n} and this node {reason}, so it cannot be "
                                   "converted at batch 1", path, where)
        for out in node.output:
            if not out:
                continue
            big, small = at_n.shapes.get(out), at_one.shapes.get(out)
            if big is None or small is None or None in big or None in small:
                raise UnsupportedError(f"the model has a fixed batch {n} and the shape of {out!r} is not static, "
                                       "so batch independence cannot be checked", path, where)
            if not big or big[0] != n or tuple(small) != (1, *big[1:]):
                raise UnsupportedError(f"the model has a fixed batch {n} and this node mixes batch items (output "
                                       f"{out!r} is {list(big)} at batch {n}, {list(small)} at batch 1)", path, where)
            batched.add(out)


def _axis(node: onnx.NodeProto, rank: int, default: int | None) -> int | None:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    axis = attrs.get("axis", default)
    return None if axis is None else int(axis) + rank if int(axis) < 0 else int(axis)


def _mixing_reason(node: onnx.NodeProto, reads: list[int], at_n: FoldedGraph, opset: int) -> str:
    """Why this node may combine batch items ('' when it computes each item apart)."""
    op = node.op_type
    rank = len(at_n.shapes.get(node.input[reads[0]]) or ())
    if op in PER_ITEM:
        return ""
    if op in AXIS_DEFAULTS:
        default = 1 if op in ("Softmax", "LogSoftmax", "Hardmax") and opset < 13 else AXIS_DEFAULTS[op]
        if op == "Gather" and reads == [1]:
            return ""  # a constant table looked up per item (an embedding)
        axis = _axis(node, rank, default)
        return "" if axis not in (None, 0) else "works along the batch axis"
    if op in REDUCTIONS:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            value = at_n.consts.get(node.input[1])
            axes = None if value is None else value.tolist()
        if not axes:
            return "reduces over every axis, the batch axis included"
        return "" if all((a + rank if a < 0 else a) != 0 for a in axes) else "reduces over the batch axis"
    if op == "Transpose":
        perm = [a.ints for a in node.attribute if a.name == "perm"]
        return "" if perm and perm[0][0] == 0 else "moves the batch axis"
    if op == "Slice":
        return _slice_reason(node, at_n, rank, opset)
    if op in ("MatMul", "Gemm"):
        transposed = any(a.name == "transA" and a.i for a in node.attribute)
        both_batched = op == "MatMul" and reads == [0, 1] and rank >= 3
        return "" if (reads == [0] and not transposed) or both_batched else \
            "multiplies across batch items (the batched tensor is not the left operand)"
    return "is not known to keep batch items apart"


def _slice_reason(node: onnx.NodeProto, at_n: FoldedGraph, rank: int, opset: int) -> str:
    if opset < 10:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = list(attrs.get("axes", range(len(attrs.get("starts", [])))))
    else:
        given = at_n.consts.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        starts = at_n.consts.get(node.input[1])
        if starts is None:
            return "slices with computed bounds"
        axes = given.tolist() if given is not None else list(range(starts.size))
    return "slices the batch axis" if any((a + rank if a < 0 else a) == 0 for a in axes) else ""
