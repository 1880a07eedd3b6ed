"""Quantize on write: a float blob that is read only by int8 layers with one input scale is written as
int8 by its producer, which saves the float round trip through memory and the consumers' quantize pass.

In the simulation, an int8 Convolution/ConvolutionDepthWise/InnerProduct quantizes its float input
with ``float2int8(x * input_scale)``.  When every reader of a blob does that with the same scale, the
producer's epilogue can apply the very same operation to the very same float32 values: the int8
values are bit-identical.  The blob may reach its readers through Split, Concat (all of whose inputs
must then be written as int8 with the same scale) and max Pooling, which commutes with the monotone
``float2int8`` (a padded tap, ``-FLT_MAX``, quantizes to -127).  SqueezeNet's expand convolutions,
its max pools and fire concatenations all become int8 this way.

Producers that can quantize on write: Convolution and ConvolutionDepthWise with a float output
(fp32 layers, or int8 layers without requantization).
"""

from __future__ import annotations

from ncnnc.backends.numpy.registry import INT8, select_variant
from ncnnc.core.ir import Graph, Layer

INT8_READERS = ("Convolution", "ConvolutionDepthWise", "InnerProduct")
"""Layer types whose int8 variant quantizes a float input (and reads an int8 one as it is)."""

WRITERS = ("Convolution", "ConvolutionDepthWise")
"""Layer types whose epilogue can quantize its output."""


def is_max_pool(layer: Layer) -> bool:
    """Windowed max pooling, which commutes with a monotone quantization (its kernel pools int8 as is)."""
    return (layer.type == "Pooling" and layer.p("pooling_type") == 0 and not layer.p("global_pooling")
            and not layer.p("adaptive_pooling"))


def _float_writer(layer: Layer) -> bool:
    if layer.type not in WRITERS:
        return False
    return select_variant(layer) != INT8 or layer.p("int8_scale_term") <= 100


class _Regions:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.outputs = set(graph.outputs)
        self.producer = graph.producers()
        self.consumers = graph.consumer_map()

    def scales(self, blob: str, concats: set[str]) -> set[float] | None:
        """Input scales of the int8 readers reached from ``blob`` through Split/Concat/max Pooling (the
        Concats met are added to ``concats``); None when anything else reads it."""
        if blob in self.outputs:
            return None
        found: set[float] = set()
        for layer in self.consumers.get(blob, []):
            if layer.type in INT8_READERS and select_variant(layer) == INT8:
                found.add(float(layer.weight("bottom_int8_scales").ravel()[0]))
                continue
            if layer.type not in ("Split", "Concat") and not is_max_pool(layer):
                return None
            if layer.type == "Concat":
                concats.add(layer.outputs[0])
            for out in layer.outputs:
                more = self.scales(out, concats)
                if more is None:
                    return None
                found |= more
        return found

    def roots(self, blob: str) -> list[str] | None:
        """The float writers whose outputs make up ``blob`` (through Split/Concat/max Pooling), or None."""
        layer = self.producer.get(blob)
        if layer is None:
            return None
        if _float_writer(layer):
            return [blob]
        if layer.type in ("Split", "Concat") or is_max_pool(layer):
            found: list[str] = []
            for source in layer.inputs:
                more = self.roots(source)
                if more is None:
                    return None
                found += more
            return found
        return None


def plan_quantize_on_write(graph: Graph) -> dict[str, float]:
    """``{blob: scale}`` for every float writer's output that is to be written as int8."""
    regions = _Regions(graph)
    candidates: dict[str, tuple[float, set[str]]] = {}
    for layer in graph.layers:
        if _float_writer(layer) and len(layer.outputs) == 1:
            concats: set[str] = set()
            scales = regions.scales(layer.outputs[0], concats)
            if scales is not None and len(scales) == 1:
                candidates[layer.outputs[0]] = (scales.pop(), concats)
    changed = True
    while changed:  # a Concat is int8 only when all its inputs are written as int8 with the same scale
        changed = False
        for blob, (scale, concats) in list(candidates.items()):
            for concat in concats:
                parts = [r for source in regions.producer[concat].inputs for r in (regions.roots(source) or [None])]
                if any(r not in candidates or candidates[r][0] != scale for r in parts):
                    del candidates[blob]
                    changed = True
                    break
    return {blob: scale for blob, (scale, _) in candidates.items()}
