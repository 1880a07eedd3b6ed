"""Remove layers that do nothing at inference time, as ncnnoptimize does.

Dropout (scale 1, or folded into an InnerProduct before it), 1x1 stride-1 unpadded Pooling, Noop,
a Split with at most one output in use, a MemoryData nobody reads, a Flatten or a 1-D Reshape
after global pooling (whose output is already 1-D), a Flatten after a 1-D InnerProduct, and a
``1x1xC`` Reshape in front of a BinaryOp (a 1-D operand of size C broadcasts per channel anyway).
The surviving blob keeps the removed layer's output name, as in ncnnoptimize.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.passes import LEVEL_FOLD, Pass
from ncnnc.core.patterns import Match, Op, Pattern, PatternPass, can_eliminate, chain, eliminate, fuse_into, set_weight
from ncnnc.plugins.passes.common import float_weights, no_activation, shape, single_output


def _one_to_one(layer: Layer) -> bool:
    return len(layer.inputs) == 1 and len(layer.outputs) == 1


def _removable(graph: Graph, m: Match) -> bool:
    return can_eliminate(graph, m["x"])


def _eliminate(graph: Graph, m: Match) -> str:
    layer = m["x"]
    eliminate(graph, layer)
    return f"removed {layer.type} {layer.name}"


def _fuse_innerproduct_dropout(graph: Graph, m: Match) -> str | None:
    ip, drop = m["ip"], m["drop"]
    scale = np.float32(drop.p("scale"))
    if scale != 1:
        if not (float_weights(ip) and no_activation(ip)):
            return None
        set_weight(ip, "weight", ip.weight("weight") * scale)
        if ip.p("bias_term"):
            set_weight(ip, "bias", ip.weight("bias") * scale)
    fuse_into(graph, ip, drop)
    return f"{ip.name} + {drop.name} -> {ip.name}" + (f" (weights x{scale:g})" if scale != 1 else "")


fuse_innerproduct_dropout = PatternPass(
    "fuse_innerproduct_dropout",
    chain(ip=Op("InnerProduct", where=single_output), drop=Op("Dropout", where=single_output)),
    _fuse_innerproduct_dropout, "fold a Dropout's scale into the InnerProduct before it",
    level=LEVEL_FOLD, order=230)

eliminate_dropout = PatternPass(
    "eliminate_dropout", Pattern(x=Op("Dropout", where=lambda x: _one_to_one(x) and x.p("scale") == 1)),
    _eliminate, "remove Dropout layers with scale 1", where=_removable, order=400)


def _pooling1x1(p: Layer) -> bool:
    pads = (p.p("pad_left"), p.p("pad_right"), p.p("pad_top"), p.p("pad_bottom"))
    return (_one_to_one(p) and not p.p("global_pooling") and not p.p("adaptive_pooling") and pads == (0, 0, 0, 0)
            and (p.p("kernel_w"), p.p("kernel_h"), p.p("stride_w"), p.p("stride_h")) == (1, 1, 1, 1))


eliminate_pooling1x1 = PatternPass(
    "eliminate_pooling1x1", Pattern(x=Op("Pooling", where=_pooling1x1)),
    _eliminate, "remove 1x1 stride-1 Pooling without padding", where=_removable, order=410)


def _noop_removable(graph: Graph, m: Match) -> bool:
    noop = m["x"]
    if _one_to_one(noop):
        return can_eliminate(graph, noop)
    outputs = set(graph.outputs)
    return not noop.inputs and not any(graph.consumers(b) or b in outputs for b in noop.outputs)


def _eliminate_noop(graph: Graph, m: Match) -> str:
    noop = m["x"]
    if noop.inputs:
        eliminate(graph, noop)
    else:
        graph.remove_layer(noop)
    return f"removed Noop {noop.name}"


eliminate_noop = PatternPass(
    "eliminate_noop", Pattern(x=Op("Noop")), _eliminate_noop,
    "remove Noop layers (pass-through, or without inputs and unread)", where=_noop_removable, order=420)


def _used_outputs(graph: Graph, layer: Layer) -> list[str]:
    outputs = set(graph.outputs)
    return [b for b in layer.outputs if graph.consumers(b) or b in outputs]


def _split_removable(graph: Graph, m: Match) -> bool:
    split = m["x"]
    used = _used_outputs(graph, split)
    if len(used) == 1:
        return can_eliminate(graph, split, used[0])
    producer = graph.producer(split.inputs[0])
    return not used and producer is not None and producer.type == "MemoryData"


def _eliminate_split(graph: Graph, m: Match) -> str:
    split = m["x"]
    used = _used_outputs(graph, split)
    if used:
        eliminate(graph, split, used[0])
    else:
        graph.remove_layer(split)
    return f"removed Split {split.name}"


eliminate_split = PatternPass(
    "eliminate_split", Pattern(x=Op("Split", n_inputs=1)), _eliminate_split,
    "remove Split layers with at most one output in use", where=_split_removable, order=430)


def _global(p: Layer) -> bool:
    return bool(p.p("global_pooling")) and single_output(p)


def _absorb(graph: Graph, m: Match) -> str:
    keep, gone = m["keep"], m["x"]
    fuse_into(graph, keep, gone)
    return f"removed {gone.type} {gone.name} after {keep.type} {keep.name}"


eliminate_flatten_after_global_pooling = PatternPass(
    "eliminate_flatten_after_global_pooling",
    chain(keep=Op("Pooling", where=_global), x=Op("Flatten", where=single_output)),
    _absorb, "remove a Flatten after global pooling (its output is 1-D already)", order=440)


def _reshape_to_channels(graph: Graph, m: Match) -> bool:
    r = m["x"]
    if (r.p("h"), r.p("d"), r.p("c"), r.p("permute")) != (-233, -233, -233, 0):
        return False
    if r.p("w") in (-1, 0):
        return True
    pooled = shape(graph, m["keep"].outputs[0])
    return pooled is not None and (r.p("w"),) == pooled


eliminate_reshape_after_global_pooling = PatternPass(
    "eliminate_reshape_after_global_pooling",
    chain(keep=Op("Pooling", where=_global), x=Op("Reshape", where=single_output)),
    _absorb, "remove a 1-D Reshape after global pooling", where=_reshape_to_channels, order=450,
    needs_shapes=True)


def _innerproduct_1d(graph: Graph, m: Match) -> bool:
    out = shape(graph, m["keep"].outputs[0])
    return out is not None and len(out) == 1


eliminate_flatten_after_innerproduct = PatternPass(
    "eliminate_flatten_after_innerproduct",
    chain(keep=Op("InnerProduct", where=single_output), x=Op("Flatten", where=single_output)),
    _absorb, "remove a Flatten after an InnerProduct with 1-D output", where=_innerproduct_1d, order=520,
    needs_shapes=True)


def _channel_reshape(graph: Graph, m: Match) -> bool:
    r, op = m["x"], m["op"]
    src = shape(graph, r.inputs[0])
    other = op.inputs[1] if op.inputs[0] == r.outputs[0] else op.inputs[0]
    big = shape(graph, other)
    if src is None or big is None or op.inputs[0] == op.inputs[1]:
        return False
    return len(src) == 1 and len(big) == 3 and big[0] == src[0] and shape(graph, r.outputs[0]) == (src[0], 1, 1)


def _eliminate_reshape_before_binaryop(graph: Graph, m: Match) -> str:
    r, op = m["x"], m["op"]
    op.inputs = [r.inputs[0] if b == r.outputs[0] else b for b in op.inputs]
    graph.remove_layer(r)
    return f"removed Reshape {r.name} before {op.name}"


eliminate_reshape_before_binaryop = PatternPass(
    "eliminate_reshape_before_binaryop",
    Pattern(x=Op("Reshape", where=lambda r: _one_to_one(r) and (r.p("w"), r.p("h"), r.p("permute")) == (1, 1, 0)),
            op=Op("BinaryOp", inputs=("x", None), commutative=True)),
    _eliminate_reshape_before_binaryop, "remove a 1x1xC Reshape of a 1-D operand in front of a BinaryOp",
    where=_channel_reshape, order=460, needs_shapes=True)


def _orphaned(graph: Graph, m: Match) -> bool:
    outputs = set(graph.outputs)
    return not any(graph.consumers(b) or b in outputs for b in m["x"].outputs)


def _remove(graph: Graph, m: Match) -> str:
    graph.remove_layer(m["x"])
    return f"removed MemoryData {m['x'].name}"


eliminate_orphaned_memorydata = PatternPass(
    "eliminate_orphaned_memorydata", Pattern(x=Op("MemoryData")), _remove,
    "remove MemoryData layers nobody reads", where=_orphaned, order=530)


@hookimpl
def ncnnc_passes() -> list[Pass]:
    """Dead-layer elimination."""
    return [fuse_innerproduct_dropout, eliminate_dropout, eliminate_pooling1x1, eliminate_noop, eliminate_split,
            eliminate_flatten_after_global_pooling, eliminate_reshape_after_global_pooling,
            eliminate_reshape_before_binaryop, eliminate_flatten_after_innerproduct,
            eliminate_orphaned_memorydata]
