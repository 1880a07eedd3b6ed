"""Build graphs in code: tests, examples and frontends use it to assemble ncnn layers.

>>> b = GraphBuilder()
>>> x = b.input("data", (3, 8, 8))
>>> y = b.layer("ReLU", [x], {0: 0.1})
>>> graph = b.build()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.params import ParamDict, ParamValue, get_schema


class GraphBuilder:
    """Appends layers in order; blob and layer names are generated unless given."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self._count = 0

    def _name(self, base: str) -> str:
        self._count += 1
        return f"{base.lower()}_{self._count}"

    def input(self, name: str, shape: Sequence[int]) -> str:
        """An Input layer for a blob of numpy-order ``shape`` (c, h, w) / (h, w) / (w,)."""
        keys = ("w", "h", "c") if len(shape) <= 3 else ("w", "h", "d", "c")
        params = dict(zip(keys, reversed(list(shape))))
        ids = {"w": 0, "h": 1, "d": 11, "c": 2}
        self.layers.append(Layer("Input", name, [], [name], ParamDict("Input", {ids[k]: v for k, v in params.items()})))
        return name

    def layer(self, type: str, inputs: Sequence[str], params: Mapping[int | str, ParamValue] | None = None,
              weights: Mapping[str, np.ndarray | Weight] | None = None, outputs: int | Sequence[str] = 1,
              name: str | None = None) -> str | list[str]:
        """Append a layer; returns its output blob name (a list when it has several outputs).

        ``params`` may use ids or names; ``weights`` maps the schema's weight names to arrays
        (stored fp32, or raw for load-type-1 blobs) or ready :class:`Weight` objects.
        """
        name = name or self._name(type)
        pd = ParamDict(type)
        for key, value in (params or {}).items():
            pd[key] = value
        out_names = [f"{name}_out{i}" if outputs != 1 else name for i in range(outputs)] \
            if isinstance(outputs, int) else list(outputs)
        layer = Layer(type, name, list(inputs), out_names, pd)
        schema = get_schema(type)
        load_types = {s.name: s for s in (schema.weight_specs(pd) if schema else [])}
        for wname, value in (weights or {}).items():
            if isinstance(value, Weight):
                layer.weights[wname] = value
                continue
            spec = load_types.get(wname)
            data = np.asarray(value, dtype=np.float32)
            if spec is not None and spec.shape:
                data = data.reshape(spec.shape)
            layer.weights[wname] = Weight(data, "raw" if spec is not None and spec.load_type == 1 else "fp32")
        self.layers.append(layer)
        return out_names[0] if len(out_names) == 1 else out_names

    def build(self) -> Graph:
        """The graph, validated."""
        graph = Graph(self.layers)
        graph.validate()
        return graph
