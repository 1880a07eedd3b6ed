"""Custom layer types end to end: what a plugin gives for a layer type ncnn does not have built in.

A plugin declares the type's params with ``ncnnc_layer_types`` (a :class:`~ncnnc.core.params.LayerSchema`)
and its behaviour with ``ncnnc_layer_implementations`` (a :class:`LayerImplementation`): the shape rule
shape inference uses, the numpy op the reference backend (and so calibration) runs, and optionally a
factory of a Python ``ncnn.Layer`` so the real ncnn runtime can run models with the layer too (as
ncnn's C++ examples register theirs with ``Net::register_custom_layer``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ncnnc.core.shapes import ShapeRule, shape_rule

KNOWN_PLUGINS = {
    "YoloV5Focus": "ncnnc-example-plugin (pip install examples/plugin): the YOLOv5 example's custom layer",
}
"""Custom layer types of public models -> the plugin that implements them, for the 'missing plugin' error."""


@dataclass(frozen=True)
class LayerImplementation:
    """A custom layer type's behaviour.

    ``shape_rule(layer, input_shapes) -> output_shapes`` (numpy-order shapes without batch, as in
    :mod:`ncnnc.core.shapes`); ``numpy_op`` an :class:`ncnnc.backends.numpy.Op` subclass; ``runtime_layer``
    a no-argument factory of a Python ``ncnn.Layer`` for the real runtime, or None.
    """

    type: str
    shape_rule: ShapeRule
    numpy_op: type
    runtime_layer: Callable[[], Any] | None = None
    description: str = ""

    @property
    def name(self) -> str:
        """The layer type (what ``ncnnc plugins`` lists)."""
        return self.type


def register_implementation(impl: LayerImplementation) -> None:
    """Make shape inference know ``impl``'s shape rule (the numpy backend asks the registry for its op)."""
    shape_rule(impl.type)(impl.shape_rule)


def missing_plugin(layer_type: str) -> str:
    """The end of an 'unknown layer type' message: which plugin provides it, when ncnnc knows."""
    known = KNOWN_PLUGINS.get(layer_type)
    return f"; it is a custom layer: install its plugin, {known}" if known else \
        "; a custom layer needs a plugin that registers it (ncnnc_layer_types + ncnnc_layer_implementations)"
