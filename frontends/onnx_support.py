"""What the ONNX frontend refuses before any shape work: operators outside ncnn's tensor world.

Only nodes that a graph output depends on are checked.  Refused up front:

- operators of another domain than the default one (``ai.onnx.ml``, training, custom domains);
- sequence, map and optional operators: ncnn blobs are dense float tensors;
- string operators.
"""

from __future__ import annotations

import onnx

from ncnnc.core.errors import UnsupportedError
from ncnnc.frontends.onnx_fold import node_label

NON_TENSOR_OPS = frozenset({
    "SequenceConstruct", "SequenceAt", "SequenceEmpty", "SequenceInsert", "SequenceErase", "SequenceLength",
    "SequenceMap", "SplitToSequence", "ConcatFromSequence", "Optional", "OptionalGetElement", "OptionalHasElement",
    "StringNormalizer", "StringConcat", "StringSplit", "RegexFullMatch",
})
"""Default-domain operators whose inputs or outputs are sequences, optionals or strings."""


def check_operators(model: onnx.ModelProto, path: str) -> None:
    """Refuse the first live node that is of another domain or works on sequences, optionals or strings."""
    needed = {o.name for o in model.graph.output}
    live = set()
    for index in reversed(range(len(model.graph.node))):
        node = model.graph.node[index]
        if any(o in needed for o in node.output):
            live.add(index)
            needed.update(i for i in node.input if i)
    for index in sorted(live):
        node = model.graph.node[index]
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedError(f"unsupported operator {node.domain}.{node.op_type} (only the default ONNX "
                                   "domain maps onto ncnn layers)", path, node_label(node, index))
        if node.op_type in NON_TENSOR_OPS:
            raise UnsupportedError(f"{node.op_type} works on sequences, optionals or strings: ncnn blobs are "
                                   "float tensors", path, node_label(node, index))
