"""The quantizer: a calibration table + an fp32 graph -> the int8 graph ``ncnn2int8`` writes.

What it does, in ncnn2int8's order (Tencent/ncnn ``tools/quantize/ncnn2int8.cpp``):

1. Convolution (``8=2``), ConvolutionDepthWise (``8=1``) and InnerProduct (``8=2``) that have both
   a weight line and an input-blob line in the table get int8 weights (one scale per output
   channel, per group for depthwise), their weight scales and their input scale.
2. RNN, LSTM and GRU (``8=2``) and Embed (``18=2``) get weight-only ("dynamic") int8 weights with
   per-row ``127/absmax`` scales; no table needed, the runtime quantizes their inputs on the fly.
   Likewise Gemm (``18=2``: a constant A is made row-major, ``2=0``, and gets one scale per row; a
   constant B is made transposed, ``3=1``, and gets one scale), MultiHeadAttention (``18=2``: one
   scale per row of the q/k/v weights, one for the whole output weight) and SDPA (``18=2``, no
   weights: the runtime quantizes its activations).
3. Requantize fusion: a quantized convolution whose output feeds only quantized convolutions
   (directly or through a Split) gets ``8 += 100`` and the consumer's input scale as its output
   scale, so the runtime hands int8 straight to the next convolution.
4. Every weight that stays float is stored fp16, load-type-1 blobs (biases, scales) raw fp32.

Where it differs from ncnn2int8 (on purpose): a recurrent layer's ``weight_hc`` scale is taken over
the whole row (ncnn2int8 scans ``input size`` elements of it, which clips or over-reads when the
input size differs from ``num_output``); an all-zero row gets scale 1, not infinity; a Gemm's
constant B that is already transposed (``3=1``) gets its scale from all of B (ncnn2int8 looks at its
first row only and saturates the others); a table that does not fit the model is an error instead
of being ignored or crashing.

Layers named in ``fp32_layers`` or commented out (``#``) in the table stay fp32.  Every choice
is recorded in a :class:`QuantizeReport`.  Bad input (an int8 model, a table naming a layer the
model does not have or a layer type with no int8 form, scale counts that do not match the
layer) raises :class:`~ncnnc.core.errors.NcnncError` naming the file and the layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ncnnc.backends.ncnn_writer import convert_storage
from ncnnc.core.errors import NcnncError
from ncnnc.core.int8 import absmax_scales, quantize_rows
from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.table import CalibrationTable

STATIC_TYPES = ("Convolution", "ConvolutionDepthWise", "InnerProduct")
"""Layer types quantized with a calibration table (int8 inputs and weights)."""

DYNAMIC_TYPES = ("RNN", "LSTM", "GRU", "Embed", "Gemm", "MultiHeadAttention", "SDPA")
"""Layer types whose weights ncnn2int8 quantizes without a table."""

CONV_TYPES = ("Convolution", "ConvolutionDepthWise")
"""Layer types that take part in requantize fusion."""

_WRITTEN_AFTER_SCALE_TERM = (9, 10, 17, 19)
"""Param ids ncnn's model writer puts after ``8=int8_scale_term`` on a convolution line."""


@dataclass
class QuantizeReport:
    """What the quantizer did to each layer with weights."""

    quantized: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)
    requantized: list[str] = field(default_factory=list)
    asymmetric: list[str] = field(default_factory=list)
    """Quantized layers whose inputs were shifted to use all 255 levels (``quantize(asymmetric=True)``)."""
    kept_fp32: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines for the command line."""
        lines = [f"int8: {len(self.quantized)} layers (requantize fusion on {len(self.requantized)}"
                 + (f", asymmetric inputs on {len(self.asymmetric)}" if self.asymmetric else "")
                 + f"), weight-only int8: {len(self.dynamic)}, kept fp32: {len(self.kept_fp32)}"]
        lines += [f"  fp32 {name}: {why}" for name, why in self.kept_fp32.items()]
        return "\n".join(lines)


@dataclass
class QuantizeResult:
    """The int8 graph and the report."""

    graph: Graph
    report: QuantizeReport


def check_layer_names(graph: Graph, names: Iterable[str], model_path: str | None = None) -> None:
    """A user error for the first of the ``--fp32-layers`` ``names`` that ``graph`` does not have."""
    for name in names:
        if graph.find(name) is None:
            raise NcnncError(f"--fp32-layers names layer {name!r}, which the model does not have", model_path)


def quantize(graph: Graph, table: CalibrationTable | None = None, *, fp32_layers: Iterable[str] = (),
             fp32_reasons: dict[str, str] | None = None, model_path: str | None = None,
             table_path: str | None = None, asymmetric: bool = False) -> QuantizeResult:
    """Quantize a copy of ``graph`` with ``table`` (None: weight-only quantization only).

    ``fp32_layers`` stay fp32 (``fp32_reasons`` may say why, for the report); ``model_path``
    and ``table_path`` only name the files in error messages.  With ``asymmetric`` the inputs of
    layers that read ReLU outputs get 255 levels instead of 128 (:mod:`ncnnc.core.asymmetric`).
    """
    check_fp32_model(graph, model_path)
    graph = graph.copy()
    no_table = table is None
    table = table or CalibrationTable()
    reasons = dict(fp32_reasons or {})
    keep = set(fp32_layers) | set(reasons)
    check_layer_names(graph, sorted(keep), model_path)
    _check_table(graph, table, table_path)
    report = QuantizeReport()
    reasons |= {name: ONE_D_REASON for name in one_d_convolutions(graph) if name not in keep}
    keep |= set(reasons)
    static = []
    for layer in graph.layers:
        if layer.type not in STATIC_TYPES + DYNAMIC_TYPES:
            continue
        if layer.name in keep:
            report.kept_fp32[layer.name] = reasons.get(layer.name, "asked to stay fp32")
        elif layer.type in DYNAMIC_TYPES:
            _quantize_dynamic(layer)
            report.dynamic.append(layer.name)
        else:
            why = "no calibration table" if no_table else _static_reason_to_skip(layer, table)
            if why:
                report.kept_fp32[layer.name] = why
            else:
                static.append(layer)
    input_scales = {layer.name: table.input_scales[layer.name] for layer in static}
    shifted: set[str] = set()
    if asymmetric:
        from ncnnc.core.asymmetric import apply_shifts, plan_shifts

        shifts = plan_shifts(graph, table, set(input_scales))
        input_scales |= apply_shifts(graph, table, shifts)
        report.asymmetric = [c.name for shift in shifts for c in shift.consumers]
        shifted = {p.name for shift in shifts for p in shift.producers}
    for layer in static:
        _quantize_static(layer, table.weight_scales[layer.name], input_scales[layer.name])
        report.quantized.append(layer.name)
    report.requantized = fuse_requantize(graph, skip=shifted)
    convert_storage(graph, "fp16")
    return QuantizeResult(graph, report)


# -- checks ----------------------------------------------------------------------------------
def check_fp32_model(graph: Graph, path: str | None = None) -> None:
    """Raise if the graph is already quantized (int8 weights or a non-zero int8 scale term)."""
    for layer in graph.layers:
        schema = layer.params.schema
        term = layer.p("int8_scale_term") if schema and "int8_scale_term" in schema.by_name else 0
        if term or any(w.storage == "int8" for w in layer.weights.values()):
            raise NcnncError("this is already an int8 model (int8 weights/scales); give the fp32 model",
                             path, f"layer {layer.name}")


def _expected_weight_scales(layer: Layer) -> int:
    if layer.type == "ConvolutionDepthWise":
        return int(layer.p("group"))
    return int(layer.p("num_output"))


def _check_table(graph: Graph, table: CalibrationTable, path: str | None) -> None:
    for name in table.layers():
        layer = graph.find(name)
        where = f"layer {name}"
        if layer is None:
            raise NcnncError("the table names a layer the model does not have (a table for another model?)",
                             path, where)
        if layer.type not in STATIC_TYPES:
            raise NcnncError(f"the table has scales for a {layer.type} layer, which has no int8 form", path, where)
        if name in table.input_scales and name not in table.weight_scales:
            raise NcnncError("the table has an input scale but no weight scales (no line "
                             f"{name}_param_0)", path, where)
        if name in table.weight_scales:
            have, want = table.weight_scales[name].size, _expected_weight_scales(layer)
            if have != want:
                raise NcnncError(f"the table has {have} weight scales, the {layer.type} needs {want} "
                                 "(a table for another model?)", path, where)


ONE_D_REASON = ("reads a 1-D blob: the ncnn runtime runs this 1x1 Convolution as an InnerProduct, and its int8 "
                "form there gives wrong results")


def one_d_convolutions(graph: Graph, input_shapes: dict[str, tuple[int, ...]] | None = None) -> list[str]:
    """Convolutions whose input is a 1-D blob (after a global pooling: PP-OCRv5's squeeze-excitation
    blocks), which the quantizer keeps fp32 (:data:`ONE_D_REASON`), by shapes inferred from ``input_shapes``
    (default: the input shapes calibration used; none known: none found)."""
    from ncnnc.core.shapes import infer_shapes

    given = input_shapes if input_shapes is not None else {
        b: graph.shapes[b] for b in graph.inputs if b in graph.shapes}  # as calibration saw them
    try:
        shapes = infer_shapes(graph.copy(), given)
    except NcnncError:
        return []
    return [layer.name for layer in graph.layers
            if layer.type == "Convolution" and len(shapes.get(layer.inputs[0], (0, 0))) == 1]


def _static_reason_to_skip(layer: Layer, table: CalibrationTable) -> str:
    if layer.name in table.commented:
        return "commented out in the table"
    if layer.name not in table.input_scales:
        return "no scales in the table"
    if layer.type in CONV_TYPES and layer.p("dynamic_weight"):
        return "weights are a runtime input (dynamic_weight)"
    return ""


# -- rewriting layers ------------------------------------------------------------------------
def _set_scale_term(layer: Layer, pid: int, value: int,
                    written_after: Iterable[int] = _WRITTEN_AFTER_SCALE_TERM) -> None:
    """Set a param where ncnn's model writer puts it: before the ids in ``written_after`` (by
    default the activation params that follow a convolution's int8 scale term)."""
    values = layer.params.values
    if pid in values:
        values[pid] = value
        return
    later = set(written_after)
    items = list(values.items())
    at = next((i for i, (k, _) in enumerate(items) if k in later), len(items))
    items.insert(at, (pid, value))
    values.clear()
    values.update(items)


def _raw(values) -> Weight:
    return Weight(np.asarray(values, dtype=np.float32).ravel(), "raw")


def _quantize_static(layer: Layer, weight_scales: np.ndarray, input_scale: float) -> None:
    weight = layer.weight("weight")
    weight_scales = np.asarray(weight_scales, np.float32)
    layer.weights["weight"] = Weight(quantize_rows(weight, weight_scales), "int8")
    layer.weights["weight_int8_scales"] = _raw(weight_scales)
    layer.weights["bottom_int8_scales"] = _raw([input_scale])
    _set_scale_term(layer, 8, 1 if layer.type == "ConvolutionDepthWise" else 2)


def _set_in_id_order(layer: Layer, pid: int, value: int) -> None:
    """Set a param of a layer type whose params ncnn's model writer puts in id order."""
    _set_scale_term(layer, pid, value, [i for i in layer.params.schema.by_id if i > pid])


def _quantize_gemm(layer: Layer) -> None:
    if layer.p("constantA"):
        a = layer.weight("A_data")
        if layer.p("transA"):
            a = np.ascontiguousarray(a.T)
            del layer.params["transA"]  # 2=0 is the default, which ncnn's writer leaves out
        scales = absmax_scales(a, a.shape[0])
        layer.weights["A_data"] = Weight(quantize_rows(a, scales), "int8")
        layer.weights["A_data_int8_scales"] = _raw(scales)
    if layer.p("constantB"):
        b = layer.weight("B_data")
        if not layer.p("transB"):
            b = np.ascontiguousarray(b.T)
            _set_in_id_order(layer, 3, 1)
        scale = absmax_scales(b, 1)
        layer.weights["B_data"] = Weight(quantize_rows(b, scale), "int8")
        layer.weights["B_data_int8_scale"] = _raw(scale)


def _quantize_attention(layer: Layer) -> None:
    for name in ("q", "k", "v", "out"):
        w = layer.weight(f"{name}_weight")
        scales = absmax_scales(w, 1 if name == "out" else w.shape[0])
        layer.weights[f"{name}_weight"] = Weight(quantize_rows(w, scales), "int8")
        layer.weights[f"{name}_weight_int8_scale" + ("" if name == "out" else "s")] = _raw(scales)


def _quantize_dynamic(layer: Layer) -> None:
    if layer.type in ("Gemm", "MultiHeadAttention", "SDPA"):
        if layer.type == "Gemm":
            _quantize_gemm(layer)
        elif layer.type == "MultiHeadAttention":
            _quantize_attention(layer)
        _set_in_id_order(layer, 18, 2)
        return
    if layer.type == "Embed":
        weight = layer.weight("weight")
        scale = absmax_scales(weight, 1)
        layer.weights["weight"] = Weight(quantize_rows(weight, scale), "int8")
        layer.weights["weight_int8_scales"] = _raw(scale)
        _set_scale_term(layer, 18, 2)
        return
    for name in ("weight_xc", "weight_hc"):
        weight = layer.weight(name)
        rows = weight.shape[0] * weight.shape[1]
        scales = absmax_scales(weight, rows)
        layer.weights[name] = Weight(quantize_rows(weight, scales), "int8")
        layer.weights[f"{name}_int8_scales"] = Weight(scales.reshape(weight.shape[:2]), "raw")
    _set_scale_term(layer, 8, 2)


# -- requantize fusion -----------------------------------------------------------------------
def _is_int8_conv(layer: Layer) -> bool:
    return (layer.type in CONV_TYPES and len(layer.inputs) == 1 and "weight" in layer.weights
            and layer.weights["weight"].storage == "int8")


def _requantize_target(graph: Graph, layer: Layer, consumers: dict[str, list[Layer]]) -> Layer | None:
    """The convolution whose input scale ``layer`` should requantize to, or None.

    Every reader of the output (through at most one Split, as ncnn2int8 looks) must be an int8
    convolution; ncnn2int8 takes the direct consumer, or the consumer of the Split's first output.
    """
    (out,) = layer.outputs
    readers = consumers.get(out, [])
    if not readers or out in graph.outputs:
        return None
    if len(readers) == 1 and readers[0].type == "Split":
        split = readers[0]
        finals = [c for top in split.outputs for c in consumers.get(top, [])]
        if any(top in graph.outputs or not consumers.get(top) for top in split.outputs):
            return None
        if finals and all(_is_int8_conv(c) for c in finals):
            return consumers[split.outputs[0]][-1]
        return None
    return readers[0] if all(_is_int8_conv(c) for c in readers) else None


def fuse_requantize(graph: Graph, skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Give int8 convolutions feeding int8 convolutions an int8 output (``8 += 100``), but those in ``skip``.

    Returns the names of the layers changed.
    """
    consumers = graph.consumer_map()
    fused = []
    for layer in graph.layers:
        if (not _is_int8_conv(layer) or len(layer.outputs) != 1 or layer.p("int8_scale_term") > 100
                or layer.name in skip):
            continue
        target = _requantize_target(graph, layer, consumers)
        if target is None:
            continue
        layer.weights["top_int8_scales"] = _raw(target.weights["bottom_int8_scales"].data)
        _set_scale_term(layer, 8, int(layer.p("int8_scale_term")) + 100)
        fused.append(layer.name)
    return fused
