"""Clean-up passes that make the written ``.param`` look like ncnnoptimize's.

- ``drop_default_params``: params explicitly set to ncnn's default are not written (ncnnoptimize
  writes only values that differ from a freshly created layer).
- ``shape_hints``: every layer gets param 30 (``-23330=``): for each output blob ``dims, w, h, d, c``,
  the shape hints ncnn's runtime reads to plan memory and pick kernels.  When shapes cannot be
  inferred, stale hints are removed instead.
"""

from __future__ import annotations

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph
from ncnnc.core.params import ParamDict, ParamValue
from ncnnc.core.passes import LEVEL_EXACT, Pass, graph_pass

SHAPE_HINTS = 30


def _same(a: ParamValue, b: ParamValue) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(
            _same(x, y) for x, y in zip(a, b))
    return float(a) == float(b)


@graph_pass("drop_default_params", "do not write params whose value is ncnn's default", LEVEL_EXACT, order=9000)
def drop_default_params(graph: Graph) -> list[str]:
    """Remove explicit params equal to their schema default."""
    changes = []
    for layer in graph.layers:
        schema = layer.params.schema
        if schema is None:
            continue
        values = layer.params.values
        defaults = []
        for pid, value in values.items():
            if pid not in schema.by_id:
                continue
            without = ParamDict(layer.type, {k: v for k, v in values.items() if k != pid})
            if _same(value, without[pid]):
                defaults.append(pid)
        if defaults:
            layer.params.values = {k: v for k, v in values.items() if k not in defaults}
            changes.append(f"{layer.name}: dropped default " + " ".join(f"{k}=" for k in defaults))
    return changes


def hint(shape: tuple[int, ...]) -> list[int]:
    """ncnn's five shape-hint values of one blob: ``dims, w, h, d, c``."""
    dims = len(shape)
    w = shape[-1]
    h = shape[-2] if dims >= 2 else 1
    d = shape[1] if dims == 4 else 1
    c = shape[0] if dims >= 3 else 1
    return [dims, w, h, d, c]


@graph_pass("shape_hints", "write each layer's output shapes as param 30 (-23330=), like ncnnoptimize",
            LEVEL_EXACT, order=9100, needs_shapes=True)
def shape_hints(graph: Graph) -> list[str]:
    """Set (or, without shapes, remove) every layer's shape hints."""
    changes = []
    for layer in graph.layers:
        values = layer.params.values
        if graph.shapes and all(b in graph.shapes for b in layer.outputs):
            hints = [v for b in layer.outputs for v in hint(graph.shapes[b])]
            if values.get(SHAPE_HINTS) != hints:
                layer.params.values = {SHAPE_HINTS: hints, **{k: v for k, v in values.items() if k != SHAPE_HINTS}}
                changes.append(f"{layer.name}: shape hints {hints}")
        elif SHAPE_HINTS in values:
            del values[SHAPE_HINTS]
            changes.append(f"{layer.name}: removed stale shape hints")
    return changes


@hookimpl
def ncnnc_passes() -> list[Pass]:
    """The clean-up passes (they run last)."""
    return [drop_default_params, shape_hints]
