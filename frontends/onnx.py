"""The ONNX frontend: an ``.onnx`` model (opsets 9 to 21; older ones upgraded) -> a graph of ncnn layers.

Steps: read the file (:mod:`~ncnnc.frontends.onnx_model`: external data only from the model's
folder, opsets before 9 upgraded), fix the input shapes (``shape=`` for dynamic ones), bring a
fixed batch N > 1 to 1 when items never mix (:mod:`~ncnnc.frontends.onnx_batch`), infer static
shapes and fold constant and shape subgraphs away (:mod:`~ncnnc.frontends.onnx_fold`), then map each remaining node
(:mod:`~ncnnc.frontends.onnx_ops_nn`, :mod:`~ncnnc.frontends.onnx_ops_tensor`) through the
conversion context (:mod:`~ncnnc.frontends.onnx_convert`).  Graph inputs and outputs keep their
ONNX names.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from ncnnc.core.frontend import Frontend
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph

OPERATOR_MODULES = tuple(f"ncnnc.frontends.onnx_ops_{m}" for m in ("nn", "tensor", "math", "gather"))
"""Modules of ONNX operator mappers."""


def load(path: str | Path, shape: str | Sequence[int] | None = None) -> Graph:
    """Convert an ONNX model file; ``shape`` (ncnn ``w,h,c``, e.g. ``"[227,227,3]"``) fixes a dynamic input."""
    # imported here, not at module level: the onnx package costs a fifth of a second to import, and
    # every ncnnc command loads this plugin to list it
    from ncnnc.frontends.onnx_batch import fold_at_batch_one, note_batch
    from ncnnc.frontends.onnx_convert import Converter
    from ncnnc.frontends.onnx_model import fix_input_shapes, model_opset, read_model
    from ncnnc.frontends.onnx_patterns import rewrite
    from ncnnc.frontends.onnx_support import check_operators

    for module in OPERATOR_MODULES:  # importing them registers the operator mappers
        importlib.import_module(module)
    path_s = str(path)
    model = read_model(path)
    check_operators(model, path_s)
    input_shapes = fix_input_shapes(model, path_s, shape)
    folded, batch = fold_at_batch_one(model, input_shapes, model_opset(model, path_s), path_s)
    rewrite(folded)
    graph = Converter(folded, path_s).convert()
    if batch != 1:
        note_batch(path_s, batch)
    graph.name = Path(path).stem
    return graph


def _claims(paths: Sequence[str]) -> bool:
    return len(paths) == 1 and str(paths[0]).lower().endswith(".onnx")


def _load(paths: Sequence[str], shape: str | Sequence[int] | None = None, **_options) -> Graph:
    return load(paths[0], shape=shape)


@hookimpl
def ncnnc_frontends() -> list[Frontend]:
    """The ONNX frontend."""
    return [Frontend("onnx", "ONNX model (opsets 9-21), shape subgraphs folded, NCHW batch 1",
                     _claims, _load, usage="MODEL.onnx [--shape w,h,c]")]
