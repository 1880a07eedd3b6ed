"""Static shapes and constant folding for an ONNX graph with fixed input shapes.

Exporters compute padding amounts, flatten sizes and reshape targets with small subgraphs
(``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``, ``ConstantOfShape``, ``Range`` ...).
With the input shapes fixed, ``onnx.shape_inference`` gives every tensor a static shape, a
``Shape``/``Size`` node becomes a constant, and any node whose inputs are all constants is
evaluated once with ONNX's reference implementation of that operator (at the model's opset),
``onnx.reference.ReferenceEvaluator``, so folding has the reference semantics of every operator.
Rounds repeat until nothing changes; nodes that no longer feed a graph output are dropped.  A
folded constant may hold at most :data:`MAX_FOLDED_ELEMENTS` elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ncnnc.core.errors import ModelFormatError, UnsupportedError

NOT_FOLDABLE = frozenset({
    "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli",
})
"""Operators whose output is not a function of their inputs."""

MAX_ROUNDS = 16

MAX_FOLDED_ELEMENTS = 1 << 24
"""The largest constant folding may create: 16 Mi elements (64 MiB of float32).  A node whose folded
output would be larger is refused rather than evaluated (a crafted ``ConstantOfShape`` or ``Expand``
must not exhaust memory); real weights come from initializers and are not counted."""

Shape = tuple[int | None, ...]


@dataclass
class FoldedGraph:
    """What is left of an ONNX graph after folding: the nodes to map, constants and static shapes."""

    nodes: list[onnx.NodeProto]
    consts: dict[str, np.ndarray]
    shapes: dict[str, Shape]
    inputs: list[str]
    outputs: list[str]
    opset: int
    folded: list[str] = field(default_factory=list)


def node_label(node: onnx.NodeProto, index: int) -> str:
    """How errors name a node: ``node NAME (OpType)``."""
    return f"node {node.name or f'#{index}'} ({node.op_type})"


def fold(model: onnx.ModelProto, input_shapes: dict[str, tuple], opset: int, path: str) -> FoldedGraph:
    """Fold the model's constant and shape subgraphs; the model's inputs must have static shapes."""
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [name for name in input_shapes]
    outputs = [o.name for o in g.output]
    nodes = list(g.node)
    folded: list[str] = []
    shapes: dict[str, Shape] = {}
    for _ in range(MAX_ROUNDS):
        shapes = infer_shapes(model, nodes, consts, outputs, path)
        remaining: list[onnx.NodeProto] = []
        for index, node in enumerate(nodes):
            values = _try_fold(node, consts, shapes, model, path, index)
            if values is None:
                remaining.append(node)
                continue
            for name, value in zip(node.output, values):
                if name:
                    consts[name] = np.asarray(value)
            folded.append(node.op_type)
        changed = len(remaining) != len(nodes)
        nodes = _live_nodes(remaining, outputs)
        if not changed:
            break
    shapes = infer_shapes(model, nodes, consts, outputs, path)
    used = {i for n in nodes for i in n.input} | set(outputs)
    consts = {k: v for k, v in consts.items() if k in used}
    return FoldedGraph(nodes, consts, shapes, inputs, outputs, opset, folded)


def _live_nodes(nodes: list[onnx.NodeProto], outputs: list[str]) -> list[onnx.NodeProto]:
    needed = set(outputs)
    live: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(i for i in node.input if i)
    return list(reversed(live))


def _try_fold(node: onnx.NodeProto, consts: dict[str, np.ndarray], shapes: dict[str, Shape],
              model: onnx.ModelProto, path: str, index: int) -> list[np.ndarray] | None:
    if node.domain not in ("", "ai.onnx") or node.op_type in NOT_FOLDABLE:
        return None
    if node.op_type in ("Shape", "Size") and node.input[0] not in consts:
        shape = shapes.get(node.input[0])
        if shape is None or any(d is None for d in shape):
            return None
        if node.op_type == "Size":
            return [np.array(int(np.prod(shape)), dtype=np.int64)]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        start, end = attrs.get("start", 0), attrs.get("end", len(shape))
        return [np.array(shape[slice(start, end)], dtype=np.int64)]
    if not all(name in consts for name in node.input if name):
        return None
    for out in node.output:
        shape = shapes.get(out)
        if shape is not None and None not in shape:
            _check_fold_size(node, index, out, int(np.prod(shape, dtype=np.int64)), path)
    values = evaluate(node, consts, model, path, index)
    for out, value in zip(node.output, values):
        _check_fold_size(node, index, out, int(value.size), path)
    return values


def _check_fold_size(node: onnx.NodeProto, index: int, name: str, size: int, path: str) -> None:
    if size > MAX_FOLDED_ELEMENTS:
        raise UnsupportedError(f"folding this constant node would create {name!r} of {size} elements, more than "
                               f"the folding limit of {MAX_FOLDED_ELEMENTS}", path, node_label(node, index))


def evaluate(node: onnx.NodeProto, consts: dict[str, np.ndarray], model: onnx.ModelProto, path: str,
             index: int) -> list[np.ndarray]:
    """Run one node on constant inputs with ONNX's reference implementation at the model's opsets."""
    feeds = {name: consts[name] for name in node.input if name}
    graph = helper.make_graph(
        [node], "fold", [helper.make_tensor_value_info(name, _elem_type(value), value.shape)
                         for name, value in feeds.items()],
        [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None) for name in node.output if name])
    single = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    try:
        results = ReferenceEvaluator(single).run(None, feeds)
    except Exception as e:  # the reference implementation raises anything on bad attributes/inputs
        raise ModelFormatError(f"cannot evaluate this constant node: {type(e).__name__}: {e}", path,
                               node_label(node, index)) from None
    return [np.asarray(r) for r in results]


def _elem_type(value: np.ndarray) -> int:
    try:
        return helper.np_dtype_to_tensor_dtype(value.dtype)
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.UNDEFINED


def infer_shapes(model: onnx.ModelProto, nodes: list[onnx.NodeProto], consts: dict[str, np.ndarray],
                 outputs: list[str], path: str) -> dict[str, Shape]:
    """Static shapes of every tensor ``onnx.shape_inference`` can work out (None for unknown dims).

    Pooling with ``ceil_mode`` gets onnxruntime's (and PyTorch's) output size, which drops a last
    window that would start in the right padding; ``onnx.shape_inference`` does not, so those
    sizes are seeded as known shapes and inference is run again.
    """
    overrides: dict[str, tuple[int, ...]] = {}
    while True:
        shapes = _infer_once(model, nodes, consts, outputs, path, overrides)
        new = _ceil_pool_sizes(nodes, shapes)
        if all(overrides.get(k) == v for k, v in new.items()):
            return shapes
        overrides.update(new)


def _ceil_pool_sizes(nodes: list[onnx.NodeProto], shapes: dict[str, Shape]) -> dict[str, tuple[int, ...]]:
    """onnxruntime's output shapes of ``ceil_mode`` pooling nodes where ONNX's inference differs."""
    result = {}
    for node in nodes:
        if node.op_type not in ("MaxPool", "AveragePool"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        x = shapes.get(node.input[0])
        if not attrs.get("ceil_mode") or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"") \
                or x is None or any(d is None for d in x):
            continue
        kernel = list(attrs["kernel_shape"])
        n = len(kernel)
        strides = list(attrs.get("strides", [1] * n))
        dilations = list(attrs.get("dilations", [1] * n))
        pads = list(attrs.get("pads", [0] * 2 * n))
        out = list(x[:2])
        for i in range(n):
            size = x[2 + i]
            span = size + pads[i] + pads[i + n] - dilations[i] * (kernel[i] - 1) - 1
            o = -(-span // strides[i]) + 1
            if (o - 1) * strides[i] >= size + pads[i]:
                o -= 1
            out.append(o)
        if tuple(out) != shapes.get(node.output[0]):
            result[node.output[0]] = tuple(out)
    return result


def _infer_once(model: onnx.ModelProto, nodes: list[onnx.NodeProto], consts: dict[str, np.ndarray],
                outputs: list[str], path: str, overrides: dict[str, tuple[int, ...]]) -> dict[str, Shape]:
    g = model.graph
    used = {i for n in nodes for i in n.input}
    init = [numpy_helper.from_array(np.asarray(v), name) for name, v in consts.items() if name in used]
    init_names = {t.name for t in init}
    graph_inputs = [vi for vi in g.input if vi.name not in init_names and vi.name not in consts]
    graph = helper.make_graph(nodes, g.name or "graph", graph_inputs,
                              [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, overrides.get(o))
                               for o in outputs if o not in consts], initializer=init,
                              value_info=[helper.make_tensor_value_info(k, onnx.TensorProto.FLOAT, v)
                                          for k, v in overrides.items() if k not in outputs])
    probe = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    probe.functions.extend(model.functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True)
    except Exception as e:  # onnx raises InferenceError / ValidationError / RuntimeError
        raise ModelFormatError(f"shape inference failed: {e}", path) from None
    shapes: dict[str, Shape] = {}
    ig = inferred.graph
    for vi in [*ig.input, *ig.value_info, *ig.output]:
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    for name, value in consts.items():
        shapes[name] = tuple(value.shape)
    return shapes
