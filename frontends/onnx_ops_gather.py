"""ONNX Gather (an embedding lookup -> Embed; constant indices -> Crop / Concat of crops) and Tile."""

from __future__ import annotations

import numpy as np
import onnx

from ncnnc.frontends.onnx_convert import Converter, mapper, reshape_params

MAX_GATHER_PIECES = 64
"""Constant indices that are not one run of consecutive positions become one Crop each; at most this many."""


@mapper("Gather")
def gather(cx: Converter, node: onnx.NodeProto) -> None:
    """Gather: a constant 2-D table looked up by activation indices -> Embed; constant indices into an
    activation along a non-batch axis -> Crop (one run of positions) or Concat of Crops."""
    data, indices = node.input[0], node.input[1]
    axis = int(cx.attrs(node).get("axis", 0))
    table = cx.const(data)
    if table is not None:
        _embedding(cx, node, table, axis)
        return
    index = cx.const(indices)
    if index is None:
        raise cx.unsupported("Gather with both data and indices computed at run time is not supported")
    shape = cx.shape(data)
    rank = len(shape)
    a = cx.axis(axis, rank)
    positions = [int(i) + shape[a + 1] if int(i) < 0 else int(i) for i in index.reshape(-1)]
    if index.ndim > 1:
        raise cx.unsupported(f"Gather with {index.ndim}-D constant indices is not supported")
    src = cx.logical_blob(data)
    nshape = cx.nshape[src]
    runs = _runs(positions)
    if len(runs) > MAX_GATHER_PIECES:
        raise cx.unsupported(f"Gather of {len(runs)} separate runs of positions (limit {MAX_GATHER_PIECES})")
    out = node.output[0]
    pieces = []
    for k, (lo, hi) in enumerate(runs):
        piece = out if len(runs) == 1 and index.ndim == 1 else cx.fresh_blob(f"{out}_part{k}")
        piece_shape = tuple(hi - lo if i == a else s for i, s in enumerate(nshape))
        cx.add("Crop", [src], [piece], {9: [lo], 10: [hi], 11: [a]}, shapes=[piece_shape])
        pieces.append(piece)
    if index.ndim == 1 and len(runs) > 1:
        cx.add("Concat", pieces, [out], {0: a})
    elif index.ndim == 0:
        cx.add("Reshape", pieces, [out], reshape_params(cx.logical(out)))


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Consecutive increasing positions grouped into ``[lo, hi)`` runs, in order."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


def _embedding(cx: Converter, node: onnx.NodeProto, table: np.ndarray, axis: int) -> None:
    """A constant ``(vocabulary, dim)`` table looked up by a 1-D row of indices -> Embed."""
    if table.ndim != 2 or axis not in (0, -2):
        raise cx.unsupported("Gather from a constant is supported as an embedding lookup (2-D table, axis 0)")
    ids = cx.logical(node.input[1])
    if len(ids) != 1:
        raise cx.unsupported(f"an embedding lookup takes one row of indices per item (indices shape "
                             f"{list(cx.shape(node.input[1]))})")
    vocab, dim = table.shape
    cx.add("Embed", [cx.logical_blob(node.input[1])], [node.output[0]],
           {0: int(dim), 1: int(vocab), 2: 0, 3: int(table.size)}, {"weight": table.astype(np.float32)})


@mapper("Tile")
def tile(cx: Converter, node: onnx.NodeProto) -> None:
    """Tile with constant repeats (1 on the batch axis) -> Tile ``2=repeats``."""
    repeats = cx.input_const(node, 1)
    if repeats is None:
        raise cx.unsupported("Tile needs constant repeats")
    reps = [int(r) for r in repeats.reshape(-1)]
    if not reps or reps[0] != 1:
        raise cx.unsupported(f"Tile repeats {reps} repeat the batch axis")
    if all(r == 1 for r in reps):
        cx.passthrough(node, cx.logical_blob(node.input[0]))
        return
    cx.add("Tile", [cx.logical_blob(node.input[0])], [node.output[0]], {2: reps[1:]})
