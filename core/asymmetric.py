"""Asymmetric int8 inputs on the stock ncnn runtime: non-negative activations quantized with 255 levels.

ncnn quantizes a layer's input symmetrically, ``float2int8(x * s)`` within +-127.  After a ReLU the input
is never negative, so half of the levels are never used.  Shifting the values by half the clipping range
uses them all: with ``T = 127 / s`` and ``c = T / 2`` the shifted ``x - c`` lies in ``[-c, c]`` and is
quantized with scale ``2 s``, twice as fine, and ``x = 0`` lands exactly on ``-127``.  The stock runtime
computes this without any new layer type:

- the producer (a Convolution, ConvolutionDepthWise or InnerProduct with a fused ReLU or ReLU6) outputs
  ``relu(z) - c = max(z - c, -c)``: its bias is lowered by ``c`` and its ReLU becomes a clip activation
  ``(-c, 3e38)`` (a ReLU6 ``(-c, 6 - c)``); max pooling and the layers that only move values (Split,
  Concat, Slice, Crop, ShuffleChannel, Reshape, Flatten, Permute) carry the shift;
- each consumer adds ``c * sum(W)`` per output channel to its bias, ``W`` its weights as it computes them
  (the int8 weights over their scales), so ``W (x - c) + c sum(W) = W x``; a padded consumer gets an
  explicit ``Padding`` layer with value ``-c`` (an fp32 layer: the runtime's int8 padding does not fill
  negative values correctly) and no padding of its own.

The function is the same as the unshifted model's up to float rounding; only the input quantization
changes.  A blob is shifted only when every value reaching its consumers comes from ReLU producers,
through max pooling or those layers (all of whose inputs qualify), and every reader is a Convolution,
ConvolutionDepthWise or InnerProduct, the quantized ones with one input scale (readers kept fp32 are
compensated with their weights as stored, fp16); anything else (a graph output, an element-wise
layer) leaves it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ncnnc.core.calibration import weight_rows
from ncnnc.core.int8 import INT8_MAX, quantize_rows
from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.table import CalibrationTable

WEIGHTED_TYPES = ("Convolution", "ConvolutionDepthWise", "InnerProduct")
"""The layer types that produce (with a fused ReLU or ReLU6) and read (with their bias) a shifted blob."""
CLIP_MAX = 3.0e38
"""The upper bound of the shifted producer's clip activation: no bound (FLT_MAX would not survive ``%e``)."""
PADS = ("pad_left", "pad_right", "pad_top", "pad_bottom")


@dataclass
class Shift:
    """One shifted region: the ReLU layers that produce it, the quantized layers that read it, their scale."""

    scale: float
    producers: list[Layer] = field(default_factory=list)
    consumers: list[Layer] = field(default_factory=list)
    fp32_readers: list[Layer] = field(default_factory=list)
    """Readers kept fp32 (auto mixed precision's): compensated too, with their weights as stored (fp16)."""

    @property
    def offset(self) -> np.float32:
        """``c`` for the region's scale (:func:`shift_offset`)."""
        return shift_offset(self.scale)


def shift_offset(scale: float) -> np.float32:
    """``c``: half the clipping range of input scale ``scale``, ``127 / (2 s)``, so that ``c * 2 s`` is 127."""
    return np.float32(INT8_MAX / np.float32(2 * scale))


MOVERS = ("Split", "Concat", "Slice", "Crop", "ShuffleChannel", "Reshape", "Flatten", "Permute")
"""Layers that only move, copy or select values: they carry a constant shift unchanged."""


def _transparent(layer: Layer) -> bool:
    if layer.type in MOVERS:
        return True
    return layer.type == "Pooling" and layer.p("pooling_type") == 0 and len(layer.inputs) == 1


def _relu_producer(layer: Layer) -> bool:
    """A layer with a fused ReLU, or a clip from 0 (ReLU6): its output is never negative."""
    if layer.type not in WEIGHTED_TYPES or len(layer.outputs) != 1:
        return False
    act, params = layer.p("activation_type"), layer.p("activation_params")
    if act == 1:
        return not params or float(params[0]) == 0.0
    return act == 3 and len(params) == 2 and float(params[0]) == 0.0 and float(params[1]) > 0.0


def _plain_consumer(layer: Layer) -> bool:
    if layer.type not in WEIGHTED_TYPES or len(layer.inputs) != 1 or "weight" not in layer.weights:
        return False
    if layer.type == "InnerProduct":
        return True
    return all(int(layer.p(k)) >= 0 for k in PADS) and float(layer.p("pad_value")) == 0.0


@dataclass
class _Maps:
    """The graph's producer and reader maps and outputs, built once per plan."""

    producers: dict[str, Layer]
    readers: dict[str, list[Layer]]
    outputs: set[str]


def _region(maps: _Maps, start: str, quantized: set[str], table: CalibrationTable) -> Shift | None:
    """The region around blob ``start`` (see the module docstring), or None when it cannot be shifted."""
    producers, readers, outputs = maps.producers, maps.readers, maps.outputs
    blobs, stack = {start}, [start]
    found_p: dict[str, Layer] = {}
    found_c: dict[str, Layer] = {}
    found_f: dict[str, Layer] = {}
    while stack:
        blob = stack.pop()
        if blob in outputs:
            return None
        neighbours: list[str] = []
        maker = producers.get(blob)
        if maker is None:
            return None
        if _relu_producer(maker):
            found_p[maker.name] = maker
        elif _transparent(maker):
            neighbours += [*maker.inputs, *maker.outputs]
        else:
            return None
        for reader in readers.get(blob, []):
            if _transparent(reader):
                neighbours += [*reader.inputs, *reader.outputs]
            elif _plain_consumer(reader):
                (found_c if reader.name in quantized else found_f)[reader.name] = reader
            else:
                return None
        for b in neighbours:
            if b not in blobs:
                blobs.add(b)
                stack.append(b)
    scales = {float(table.input_scales[name]) for name in found_c}
    if not found_p or not found_c or len(scales) != 1:
        return None
    return Shift(scales.pop(), list(found_p.values()), list(found_c.values()), list(found_f.values()))


def plan_shifts(graph: Graph, table: CalibrationTable, quantized: set[str]) -> list[Shift]:
    """The regions whose quantized readers (names in ``quantized``) get asymmetric inputs, in model order."""
    shifts: list[Shift] = []
    seen: set[str] = set()
    maps = _Maps(graph.producers(), graph.consumer_map(), set(graph.outputs))
    for layer in graph.layers:
        if layer.name in quantized and layer.name not in seen and layer.inputs:
            shift = _region(maps, layer.inputs[0], quantized, table)
            if shift is not None:
                shifts.append(shift)
                seen.update(c.name for c in shift.consumers)
    return shifts


def shifted_layers(graph: Graph, table: CalibrationTable, quantized: set[str]) -> set[str]:
    """The names of the quantized layers whose inputs :func:`apply_shifts` would make asymmetric."""
    return {c.name for shift in plan_shifts(graph, table, quantized) for c in shift.consumers}


def _add_bias(layer: Layer, delta: np.ndarray) -> None:
    bias = layer.weight("bias") if layer.p("bias_term") else np.zeros(int(layer.p("num_output")), np.float32)
    layer.weights["bias"] = Weight((bias.astype(np.float64) + delta).astype(np.float32), "raw")
    layer.params["bias_term"] = 1


def apply_shifts(graph: Graph, table: CalibrationTable, shifts: list[Shift]) -> dict[str, float]:
    """Rewrite ``graph`` in place for ``shifts``; returns each consumer's input scale (``2 s``)."""
    scales: dict[str, float] = {}
    for shift in shifts:
        c = shift.offset
        for p in shift.producers:
            _add_bias(p, -np.float64(c))
            top = CLIP_MAX if p.p("activation_type") == 1 else float(np.float32(float(p.p("activation_params")[1]) - c))
            p.params["activation_type"] = 3
            p.params["activation_params"] = [float(-c), top]
        quantized = {layer.name for layer in shift.consumers}
        for layer in (*shift.consumers, *shift.fp32_readers):
            if layer.name in quantized:  # the int8 weights over their scales, as the quantizer rounds them
                ws = np.asarray(table.weight_scales[layer.name], np.float32)
                effective = quantize_rows(weight_rows(layer), ws).astype(np.float64) / ws.astype(np.float64)[:, None]
                scales[layer.name] = float(np.float32(2 * shift.scale))
            else:  # the quantized model stores fp32 layers' weights as fp16
                effective = layer.weight("weight").astype(np.float16).astype(np.float64)
            rows = effective.reshape(int(layer.p("num_output")), -1)
            _add_bias(layer, np.float64(c) * rows.sum(axis=1))
            if layer.type != "InnerProduct" and any(int(layer.p(k)) for k in PADS):
                _pad_explicitly(graph, layer, -c)
    return scales


def _pad_explicitly(graph: Graph, layer: Layer, value: np.float32) -> None:
    """Move ``layer``'s zero padding into a ``Padding`` layer before it that pads with ``value``."""
    top, bottom, left, right = (int(layer.p(k)) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
    blob = graph.unique_name(f"{layer.inputs[0]}_shifted_pad")
    pad = Layer("Padding", graph.unique_name(f"{layer.name}_pad"), [layer.inputs[0]], [blob],
                {0: top, 1: bottom, 2: left, 3: right, 4: 0, 5: float(value)})
    graph.insert_before(layer, pad)
    layer.inputs[0] = blob
    for k in PADS:
        layer.params[k] = 0
