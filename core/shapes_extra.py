"""Shape rules of the detection, ROI and shape-utility layer types (:mod:`ncnnc.core.layer_types_extra`).

Detection post-processing and proposals produce as many rows as survive their thresholds and NMS: their
rule gives the largest count the layer can produce (ncnn returns an empty blob when nothing survives);
:data:`DATA_DEPENDENT` lists those types.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.errors import GraphError
from ncnnc.core.ir import Layer
from ncnnc.core.shapes import Shape, shape_rule

DATA_DEPENDENT = frozenset({"DetectionOutput", "YoloDetectionOutput", "Yolov3DetectionOutput", "Proposal"})
"""Layer types whose leading output axis depends on the data (the shape rule gives its maximum)."""


def explicit_list(layer: Layer, pid: int) -> list:
    """An array param as given in the model, ``[]`` when absent (schemas mark float arrays by a default)."""
    return list(layer.params[pid]) if pid in layer.params else []


def float_value(value: int | float) -> float:
    """A float param as the ncnn runtime reads it: an integer written in its place is that number
    (``11=-233`` is -233.0; checked against the runtime)."""
    return float(value)


def float_list(layer: Layer, pid: int) -> list[float]:
    """A float array param as the ncnn runtime reads it, ``[]`` when absent: a small integer element is
    that number (``4`` is 4.0), a large one a float's bits (``1077936128`` is 3.0: ncnn's own YOLOv3
    example models write Yolov3DetectionOutput masks so); both checked against the runtime."""
    return [float(np.array(v, np.int32).view(np.float32)) if isinstance(v, int) and abs(v) >= 1 << 24
            else float(v) for v in explicit_list(layer, pid)]


def _whc(shape: Shape) -> tuple[int, int, int]:
    """ncnn's (w, h, c) of a blob of up to 3 dims."""
    padded = (1,) * (3 - len(shape)) + tuple(shape[-3:])
    return padded[2], padded[1], padded[0]


def priorbox_is_mxnet(layer: Layer, inputs: int) -> bool:
    """Whether PriorBox runs in mxnet's MultiBoxPrior form (one output row, no variances)."""
    return (inputs == 1 and layer.p("image_width") == -233 and layer.p("image_height") == -233
            and not explicit_list(layer, 1))


def priorbox_count(layer: Layer, inputs: int) -> int:
    """Priors per feature-map position."""
    mins, maxs, ratios = (len(explicit_list(layer, i)) for i in (0, 1, 2))
    if priorbox_is_mxnet(layer, inputs):
        return mins - 1 + ratios
    return mins * ratios * (2 if layer.p("flip") else 1) + mins + maxs


@shape_rule("PriorBox")
def _priorbox(layer: Layer, ins: list[Shape]) -> list[Shape]:
    w, h, _ = _whc(ins[0])
    size = 4 * w * h * priorbox_count(layer, len(ins))
    return [(size,) if priorbox_is_mxnet(layer, len(ins)) else (2, size)]


@shape_rule("DetectionOutput")
def _detection_output(layer: Layer, ins: list[Shape]) -> list[Shape]:
    mxnet = layer.p("num_class") == -233
    priors = ins[2][-2] if mxnet and len(ins[2]) > 1 else ins[2][-1] // 4
    classes = ins[1][-2] if mxnet else layer.p("num_class")
    per_class = min(priors, layer.p("nms_top_k")) if layer.p("nms_top_k") >= 0 else priors
    count = max(classes - 1, 0) * per_class
    if 0 <= layer.p("keep_top_k") < count:
        count = layer.p("keep_top_k")
    return [(count, 6)]


@shape_rule("YoloDetectionOutput", "Yolov3DetectionOutput")
def _yolo_output(layer: Layer, ins: list[Shape]) -> list[Shape]:
    boxes = 0
    for shape in ins:
        w, h, _ = _whc(shape)
        boxes += w * h * layer.p("num_box")
    return [(boxes, 6)] * len(layer.outputs)


@shape_rule("Proposal")
def _proposal(layer: Layer, ins: list[Shape]) -> list[Shape]:
    w, h, _ = _whc(ins[0])
    count = 9 * w * h  # three ratios x three scales anchors per position
    if 0 < layer.p("pre_nms_topN") < count:
        count = layer.p("pre_nms_topN")
    count = min(count, layer.p("after_nms_topN"))
    return [(count, 1, 4), (count, 1, 1)][: len(layer.outputs)]


@shape_rule("ROIPooling", "ROIAlign")
def _roi_pooling(layer: Layer, ins: list[Shape]) -> list[Shape]:
    _, _, c = _whc(ins[0])
    return [(c, layer.p("pooled_height"), layer.p("pooled_width"))]


@shape_rule("PSROIPooling")
def _psroi_pooling(layer: Layer, ins: list[Shape]) -> list[Shape]:
    _, _, c = _whc(ins[0])
    pw, ph, dim = layer.p("pooled_width"), layer.p("pooled_height"), layer.p("output_dim")
    if c != dim * pw * ph:
        raise GraphError(f"PSROIPooling needs output_dim x pooled_h x pooled_w = {dim * pw * ph} channels, "
                         f"the input has {c}", where=f"layer {layer.name}")
    return [(dim, ph, pw)]


def squeezed_axes(layer: Layer, shape: Shape) -> list[int]:
    """The numpy axes (of ``(c, d, h, w)``-ordered ``shape``) Squeeze removes: size-1 axes named by
    ``3=axes`` (negative counts from the end), else by the ``squeeze_w/h/d/c`` flags."""
    dims = len(shape)
    axes = explicit_list(layer, 3)
    if axes:
        chosen = {a + dims if a < 0 else a for a in axes}
    else:
        names = {1: "w", 2: "hw", 3: "chw", 4: "cdhw"}[dims]
        chosen = {i for i, n in enumerate(names) if layer.p(f"squeeze_{n}")}
    return [i for i in sorted(chosen) if 0 <= i < dims and shape[i] == 1]


@shape_rule("Squeeze")
def _squeeze(layer: Layer, ins: list[Shape]) -> list[Shape]:
    drop = set(squeezed_axes(layer, ins[0]))
    out = tuple(s for i, s in enumerate(ins[0]) if i not in drop)
    return [out or (1,)]


def expanded_shape(layer: Layer, shape: Shape) -> Shape:
    """ExpandDims: a size-1 axis inserted at each of ``3=axes`` (of the output; negative from its end)."""
    axes = explicit_list(layer, 3)
    outdims = len(shape) + len(axes)
    if outdims > 4:
        raise GraphError(f"ExpandDims to {outdims} dims (ncnn blobs have at most 4)", where=f"layer {layer.name}")
    chosen = {a + outdims if a < 0 else a for a in axes}
    rest = iter(shape)
    return tuple(1 if i in chosen else next(rest) for i in range(outdims))


@shape_rule("ExpandDims")
def _expand_dims(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [expanded_shape(layer, ins[0])]


def einsum_equation(layer: Layer) -> tuple[list[str], str]:
    """Einsum's operand tokens and output token from ``0=equation`` (character codes)."""
    text = "".join(chr(int(c)) for c in explicit_list(layer, 0))
    if text == "ii":
        return ["ii"], ""
    lhs, arrow, rhs = text.partition("->")
    if not arrow:
        raise GraphError(f"Einsum equation {text!r} has no '->'", where=f"layer {layer.name}")
    return lhs.split(","), rhs


@shape_rule("Einsum")
def _einsum(layer: Layer, ins: list[Shape]) -> list[Shape]:
    tokens, rhs = einsum_equation(layer)
    sizes: dict[str, int] = {}
    for token, shape in zip(tokens, ins):
        sizes.update(zip(token, shape))
    return [tuple(sizes[ch] for ch in rhs) or (1,)]


@shape_rule("Reorg")
def _reorg(layer: Layer, ins: list[Shape]) -> list[Shape]:
    w, h, c = _whc(ins[0])
    s = layer.p("stride")
    return [(c * s * s, h // s, w // s)]


@shape_rule("Cast", "Packing")
def _same(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [ins[0]]


@shape_rule("MVN")
def _mvn(layer: Layer, ins: list[Shape]) -> list[Shape]:
    if len(ins[0]) == 4:
        return [ins[0]]
    w, h, c = _whc(ins[0])
    return [(c, h, w)]  # ncnn creates a 3-D blob for 1-D and 2-D inputs too


@shape_rule("StatisticsPooling")
def _statistics_pooling(layer: Layer, ins: list[Shape]) -> list[Shape]:
    c = ins[0][0] if len(ins[0]) >= 3 else 1
    return [(c * (2 if layer.p("include_stddev") else 1),)]
