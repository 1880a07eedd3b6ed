"""Concat (written in place by its producers), Split, Dropout and Noop: layers that cost nothing.

:func:`plan_concats` runs before any layer is lowered: each Concat input that can be a view of the
concatenation (see :func:`~ncnnc.backends.llvm.lower.in_place_axis`) is planned to be written
there directly by its producer.  Inputs that cannot (a blob used twice, a graph input placed in
another Concat already, a dtype mismatch) are copied by the Concat's own step.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.llvm.kernels.convert import emit_copy
from ncnnc.backends.llvm.lower import Lowerer, Unsupported, in_place_axis, register_lowering, sub_view
from ncnnc.core.ir import Layer


def _axis(lw: Lowerer, layer: Layer) -> int:
    dims = len(lw.shape(layer.outputs[0]))
    axis = layer.p("axis")
    return axis + dims if axis < 0 else axis


def plan_concats(lw: Lowerer) -> None:
    """Place every eligible Concat input inside the Concat's output buffer."""
    for layer in lw.graph.layers:
        if layer.type != "Concat" or not layer.inputs:
            continue
        dims = len(lw.shape(layer.outputs[0]))
        if dims > 3 or not in_place_axis(dims, _axis(lw, layer)):
            continue
        dtypes = {lw.predicted_dtype(b) for b in layer.inputs}
        if len(dtypes) != 1:
            continue
        axis, start = _axis(lw, layer), 0
        for blob in layer.inputs:
            if layer.inputs.count(blob) == 1 and blob not in lw.placement:
                lw.place_in(blob, layer.outputs[0], start)
            start += lw.shape(blob)[axis]


@register_lowering("Concat")
def lower_concat(lw: Lowerer, layer: Layer) -> None:
    """Inputs already written in place cost nothing; the others are copied into their part."""
    views = [lw.input(layer, i) for i in range(len(layer.inputs))]
    dims = len(lw.shape(layer.outputs[0]))
    axis = _axis(lw, layer)
    if len({v.dtype for v in views}) != 1:
        raise Unsupported("inputs of different dtypes")
    out = lw.output(layer, 0, views[0].dtype)
    if not in_place_axis(dims, axis):
        raise Unsupported(f"axis {layer.p('axis')} of a {dims}-D blob")
    start = 0
    for blob, view in zip(layer.inputs, views):
        part = sub_view(out, axis, start, view.shape)
        if lw.placement.get(blob) != (layer.outputs[0], start) or view != part:
            lw.add("copy", [view], [part], emit_copy)
        start += view.shape[axis]


@register_lowering("Split")
def lower_split(lw: Lowerer, layer: Layer) -> None:
    """Every output is the input itself."""
    view = lw.input(layer, 0)
    for blob in layer.outputs:
        lw.alias(blob, view)


@register_lowering("Dropout")
@register_lowering("Noop")
def lower_identity(lw: Lowerer, layer: Layer) -> None:
    """Inference-time identities (a Dropout with ``0=scale`` other than 1 is refused)."""
    if layer.type == "Dropout" and layer.p("scale") != 1:
        raise Unsupported("with a scale")
    for i, blob in enumerate(layer.outputs):
        lw.alias(blob, lw.input(layer, min(i, len(layer.inputs) - 1)))


@register_lowering("Padding")
def lower_padding(lw: Lowerer, layer: Layer) -> None:
    """Constant padding of a 3-D blob's sides, one value or one per channel (what ``quantize(asymmetric=True)``
    and ``--exact-input`` write before a padded convolution): the input copied into a larger buffer filled
    with the value."""
    from ncnnc.backends.llvm.kernels.quant import prepare_f32

    if layer.p("type") != 0 or layer.p("front") or layer.p("behind"):
        raise Unsupported("other than constant padding of the sides")
    pads = tuple(int(layer.p(k)) for k in ("top", "bottom", "left", "right"))
    src = lw.input(layer, 0)
    if src.dims != 3 or min(pads) < 0:
        raise Unsupported("of a blob other than 3-D, or cropping")
    value: float | np.ndarray = float(layer.p("value"))
    if layer.p("per_channel_pad_data_size"):
        value = np.asarray(layer.weight("per_channel_pad"), np.float32).ravel()
        if value.size != src.chw[0]:
            raise Unsupported(f"with {value.size} per-channel values for {src.chw[0]} channels")
    lw.alias(layer.outputs[0], prepare_f32(lw, src, pads, 1, value))
