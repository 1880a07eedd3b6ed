"""``YoloV5Focus``: the custom layer of ncnn's YOLOv5 example (``examples/yolov5.cpp``), as an ncnnc plugin.

The layer is space-to-depth by 2 with YOLOv5's channel order: output channel ``q`` of ``4c`` reads
input channel ``q % c`` at row offset ``(q // c) % 2`` and column offset ``(q // c) // 2``.  The plugin
declares the type (``ncnnc_layer_types``) and its behaviour (``ncnnc_layer_implementations``): the
shape rule, the numpy op that ncnnc's reference backend and calibration run, and a Python ``ncnn.Layer``
so the real ncnn runtime can load and run the model too.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy import Op
from ncnnc.core.custom_layers import LayerImplementation
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Layer
from ncnnc.core.params import LayerSchema

TYPE = "YoloV5Focus"


def focus(x: np.ndarray) -> np.ndarray:
    """Space-to-depth of the last two axes of ``(..., c, h, w)`` in YOLOv5's order, along axis -3."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    parts = [x[..., r:h:2, c:w:2] for c in (0, 1) for r in (0, 1)]
    return np.ascontiguousarray(np.concatenate(parts, axis=-3))


def focus_shape(layer: Layer, ins: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """``(c, h, w) -> (4c, h/2, w/2)``."""
    c, h, w = ins[0]
    return [(4 * c, h // 2, w // 2)]


class YoloV5FocusOp(Op):
    """The numpy op."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, c, h, w) -> (N, 4c, h/2, w/2)``."""
        return focus(x)


def runtime_layer():
    """A Python ``ncnn.Layer`` doing the same in the real ncnn runtime (PyPI ``ncnn``)."""
    import ncnn

    class YoloV5FocusLayer(ncnn.Layer):
        def __init__(self) -> None:
            ncnn.Layer.__init__(self)
            self.one_blob_only = True

        def forward(self, bottom_blob, top_blob, opt) -> int:
            out = focus(np.array(bottom_blob))  # ncnn.Mat borrows this array: keep it alive until copied
            top_blob.clone_from(ncnn.Mat(out), opt.blob_allocator)
            return -100 if top_blob.empty() else 0

    return YoloV5FocusLayer()


@hookimpl
def ncnnc_layer_types() -> list[LayerSchema]:
    """The type: no params, no weights."""
    return [LayerSchema(TYPE, doc="YOLOv5's Focus (space-to-depth by 2), the custom layer of ncnn's yolov5 example")]


@hookimpl
def ncnnc_layer_implementations() -> list[LayerImplementation]:
    """Shape rule, numpy op and runtime layer."""
    return [LayerImplementation(TYPE, focus_shape, YoloV5FocusOp, runtime_layer,
                                "YOLOv5 Focus: space-to-depth by 2 (ncnn's yolov5 example)")]
