"""Rewrites of folded ONNX graphs whose tensors ncnn cannot hold, into one node ncnn has a layer for.

Exporters spell depth-to-space and channel shuffle as ``Reshape -> Transpose -> Reshape`` through a
6-D (pixel shuffle) or 5-D tensor.  ncnn blobs have at most 4 dims, but these chains are exactly
``PixelShuffle`` and ``ShuffleChannel``:

- ``(1, C*r*r, H, W) -> (1, C, r, r, H, W)``, perm ``(0, 1, 4, 2, 5, 3)``, ``-> (1, C, H*r, W*r)``:
  ``DepthToSpace`` mode CRD; ``(1, r, r, C, H, W)`` with perm ``(0, 3, 4, 1, 5, 2)``: mode DCR;
- ``(1, C, H, W) -> (1, g, C/g, H, W)``, perm ``(0, 2, 1, 3, 4)``, ``-> (1, C, H, W)``: channel shuffle
  with ``g`` groups (an ``ncnnc``-domain ``ShuffleChannel`` node).

A chain is rewritten only when its intermediate tensors have no other reader and are not outputs.
"""

from __future__ import annotations

from collections import Counter

import onnx
from onnx import helper

from ncnnc.frontends.onnx_fold import FoldedGraph

DOMAIN = "ncnnc"
"""The operator domain of nodes that only this rewrite creates."""


def rewrite(folded: FoldedGraph) -> None:
    """Replace every pixel-shuffle / channel-shuffle chain of ``folded`` in place."""
    readers = Counter(name for node in folded.nodes for name in node.input)
    readers.update(folded.outputs)
    producer = {out: node for node in folded.nodes for out in node.output}
    replaced: dict[int, onnx.NodeProto] = {}
    dropped: set[int] = set()
    for last in folded.nodes:
        if last.op_type != "Reshape":
            continue
        transpose = producer.get(last.input[0])
        first = producer.get(transpose.input[0]) if transpose is not None else None
        if transpose is None or transpose.op_type != "Transpose" or first is None or first.op_type != "Reshape":
            continue
        if readers[transpose.output[0]] != 1 or readers[first.output[0]] != 1:
            continue
        node = _fused(folded, first, transpose, last)
        if node is not None:
            replaced[id(last)] = node
            dropped.update({id(first), id(transpose)})
    folded.nodes[:] = [replaced.get(id(n), n) for n in folded.nodes if id(n) not in dropped]


def _fused(folded: FoldedGraph, first: onnx.NodeProto, transpose: onnx.NodeProto,
           last: onnx.NodeProto) -> onnx.NodeProto | None:
    shapes = [folded.shapes.get(name) for name in (first.input[0], first.output[0], last.output[0])]
    if any(s is None or None in s for s in shapes):
        return None
    src, mid, out = shapes
    perm = tuple(next((list(a.ints) for a in transpose.attribute if a.name == "perm"), []))
    name = last.name or last.output[0]
    if len(src) == 4 and len(mid) == 6 and len(out) == 4:
        n, c, h, w = src
        if perm == (0, 1, 4, 2, 5, 3):
            mode, oc, r, r2 = "CRD", mid[1], mid[2], mid[3]
        elif perm == (0, 3, 4, 1, 5, 2):
            mode, r, r2, oc = "DCR", mid[1], mid[2], mid[3]
        else:
            return None
        if r != r2 or oc * r * r != c or tuple(mid[4:]) != (h, w) or tuple(out) != (n, oc, h * r, w * r):
            return None
        return helper.make_node("DepthToSpace", [first.input[0]], [last.output[0]], name=name, blocksize=r,
                                mode=mode)
    if len(src) == 4 and len(mid) == 5 and perm == (0, 2, 1, 3, 4) and tuple(out) == tuple(src):
        n, c, h, w = src
        groups = mid[1]
        if mid[1] * mid[2] != c or tuple(mid[3:]) != (h, w):
            return None
        return helper.make_node("ShuffleChannel", [first.input[0]], [last.output[0]], name=name, domain=DOMAIN,
                                group=groups)
    return None
