"""Fold BinaryOps with constants, as ncnnoptimize does.

- ``fuse_X_mul`` / ``fuse_X_add``: a BinaryOp multiplying or adding a per-channel MemoryData
  constant (``w=channels``, or ``1x1xchannels``) after Convolution, ConvolutionDepthWise,
  Deconvolution (mul and add) and InnerProduct (add) goes into the weights and bias.
- ``fuse_memorydata_binaryop``: a BinaryOp with a one-value MemoryData operand (directly or
  through a Split) becomes a scalar BinaryOp (``sub``/``div`` with the constant first become
  ``rsub``/``rdiv``).
- ``fuse_binaryop_eltwise``: ``a * ka + b * kb`` made of scalar multiplies and an add becomes one
  Eltwise sum with coefficients.

Where the result's shape could change (broadcasting), shapes are checked; unknown shapes mean
only the cases that are always equivalent are folded.
"""

from __future__ import annotations

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.passes import LEVEL_FOLD, Pass
from ncnnc.core.patterns import Match, Op, Pattern, PatternPass, fuse_into
from ncnnc.plugins.passes.common import PASS_NAMES, foldable, memorydata_shape, scale_and_shift, shape

OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_RSUB, OP_RDIV = 0, 1, 2, 3, 4, 5, 7, 8
SWAPPED = {OP_ADD: OP_ADD, OP_MUL: OP_MUL, OP_MAX: OP_MAX, OP_MIN: OP_MIN, OP_SUB: OP_RSUB, OP_DIV: OP_RDIV}
"""BinaryOp op_type with the operands swapped (the ones ncnnoptimize knows)."""

CONSTANT_FOLDS = (("Convolution", "mul", 120), ("Convolution", "add", 130),
                  ("ConvolutionDepthWise", "mul", 150), ("ConvolutionDepthWise", "add", 160),
                  ("Deconvolution", "mul", 180), ("Deconvolution", "add", 190),
                  ("InnerProduct", "add", 220))
"""(layer type, operation, order) of each ``fuse_X_mul``/``fuse_X_add`` pass, as in ncnnoptimize."""


def _binaryop(op_type: int, layer: Layer) -> bool:
    return layer.p("op_type") == op_type and not layer.p("with_scalar")


def _per_channel_constant(graph: Graph, m: Match) -> bool:
    layer, md, op = m["layer"], m["md"], m["op"]
    n = layer.p("num_output")
    md_shape = memorydata_shape(md)
    if md_shape not in ((n,), (n, 1, 1)):
        return False
    out, result = shape(graph, layer.outputs[0]), shape(graph, op.outputs[0])
    if out is not None and result is not None:
        # a 2-D output (InnerProduct on rows) may broadcast a 1-D constant per row: not a bias
        return out == result and len(out) != 2
    # shapes unknown: a w=channels constant broadcasts per channel over any convolution output
    return layer.type != "InnerProduct" and md_shape == (n,)


def _fold_constant(graph: Graph, m: Match) -> str:
    layer, md, op = m["layer"], m["md"], m["op"]
    values = md.weight("data").reshape(-1)
    if op.p("op_type") == OP_MUL:
        scale_and_shift(layer, values, None)
    else:
        scale_and_shift(layer, None, values)
    fuse_into(graph, layer, op)
    return f"{layer.name} + {op.name} ({md.name}) -> {layer.name}"


def constant_fold_pass(layer_type: str, operation: str, order: int) -> Pass:
    """``fuse_<type>_<mul|add>``: fold a per-channel constant multiply/add into the layer."""
    op_type = OP_MUL if operation == "mul" else OP_ADD
    pattern = Pattern(layer=Op(layer_type, where=foldable),
                      md=Op("MemoryData", shared=True),
                      op=Op("BinaryOp", inputs=("layer", "md"), commutative=True,
                            where=lambda b: _binaryop(op_type, b)))
    return PatternPass(f"fuse_{PASS_NAMES[layer_type]}_{operation}", pattern, _fold_constant,
                       f"fold a per-channel constant {operation} into the {layer_type} before it",
                       where=_per_channel_constant, level=LEVEL_FOLD, order=order, needs_shapes=True)


def _scalar(md: Layer) -> bool:
    return memorydata_shape(md) == (1,) and md.p("w") == 1


def _fuse_memorydata_binaryop(graph: Graph, m: Match) -> str | None:
    op, md = m["op"], m["md"]
    constant = m.get("split", md)
    slot = 1 if graph.producer(op.inputs[1]) is constant else 0
    op_type = op.p("op_type")
    if slot == 0:
        if op_type not in SWAPPED:
            return None
        op.params["op_type"] = SWAPPED[op_type]
    op.params["with_scalar"] = 1
    op.params["b"] = float(md.weight("data").reshape(-1)[0])
    del op.inputs[slot]
    return f"{md.name} + {op.name} -> {op.name} (b={op.p('b')})"


_NOT_SCALAR = Op("BinaryOp", inputs=(None, "md"), commutative=True, where=lambda b: not b.p("with_scalar"))
fuse_memorydata_binaryop = PatternPass(
    "fuse_memorydata_binaryop",
    [Pattern(md=Op("MemoryData", where=_scalar, shared=True), op=_NOT_SCALAR),
     Pattern(md=Op("MemoryData", where=_scalar, shared=True),
             split=Op("Split", inputs=("md",), shared=True),
             op=Op("BinaryOp", inputs=(None, "split"), commutative=True, where=lambda b: not b.p("with_scalar")))],
    _fuse_memorydata_binaryop, "turn a BinaryOp with a one-value MemoryData operand into a scalar BinaryOp",
    where=lambda g, m: m["op"].inputs[0] != m["op"].inputs[1], level=LEVEL_FOLD, order=310)


def _scalar_mul(layer: Layer) -> bool:
    return layer.p("op_type") == OP_MUL and bool(layer.p("with_scalar")) and len(layer.inputs) == 1


def _same_shaped_inputs(graph: Graph, m: Match) -> bool:
    add = m["add"]
    if add.inputs[0] == add.inputs[1]:
        return False
    a, b = shape(graph, add.inputs[0]), shape(graph, add.inputs[1])
    return a is not None and a == b


def _fuse_binaryop_eltwise(graph: Graph, m: Match) -> str:
    add = m["add"]
    inputs, coeffs, removed = list(add.inputs), [1.0, 1.0], []
    for slot, node in enumerate(("m0", "m1")):
        mul = m.get(node)
        if mul is not None:
            inputs[slot], coeffs[slot] = mul.inputs[0], float(mul.p("b"))
            removed.append(mul)
    eltwise = Layer("Eltwise", add.name, inputs, list(add.outputs), {0: 1, 1: coeffs})
    graph.replace_layer(add, eltwise)
    for mul in removed:
        graph.remove_layer(mul)
    names = " + ".join(x.name for x in [*removed, add])
    return f"{names} -> Eltwise {add.name} (coeffs {coeffs[0]:g}, {coeffs[1]:g})"


def _add(*inputs: str | None) -> Op:
    return Op("BinaryOp", inputs=inputs, where=lambda b: _binaryop(OP_ADD, b))


fuse_binaryop_eltwise = PatternPass(
    "fuse_binaryop_eltwise",
    [Pattern(m0=Op("BinaryOp", where=_scalar_mul), m1=Op("BinaryOp", where=_scalar_mul), add=_add("m0", "m1")),
     Pattern(m0=Op("BinaryOp", where=_scalar_mul), add=_add("m0", None)),
     Pattern(m1=Op("BinaryOp", where=_scalar_mul), add=_add(None, "m1"))],
    _fuse_binaryop_eltwise, "turn scalar multiplies feeding an add into one Eltwise sum with coefficients",
    where=_same_shaped_inputs, level=LEVEL_FOLD, order=320, needs_shapes=True)


@hookimpl
def ncnnc_passes() -> list[Pass]:
    """Constant folding of BinaryOps."""
    return [*(constant_fold_pass(*spec) for spec in CONSTANT_FOLDS), fuse_memorydata_binaryop,
            fuse_binaryop_eltwise]
