"""Cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias
Correction", 2019): rescale channels between consecutive convolutions so their weight ranges match.

A producer (Convolution or ConvolutionDepthWise, no fused activation or ReLU) whose output reaches only
plain Convolutions (not depthwise), directly or through Split, max Pooling and ReLU layers (all commute with
a positive per-channel scale), gets its output channel ``i`` divided by ``s_i`` (weights and bias) and the
consumers' input channel ``i`` multiplied by ``s_i``.  With ``r1_i`` the range (absmax) of the producer's
output channel ``i`` and ``r2_i`` that of the consumers' input channel ``i``, ``s_i = sqrt(r1_i / r2_i)``
leaves both at ``sqrt(r1_i * r2_i)``: the ranges become equal, and since ``relu(x / s) = relu(x) / s``
for ``s > 0`` the network computes the same function (up to float rounding).

Not equalized (the function would change): a ReLU6 or other bounded activation between the layers
(``clip(x / s, 0, 6) != clip(x, 0, 6) / s``), a leaky ReLU, Concat, element-wise layers, or a blob that is a
graph output.  Passes repeat until nothing changes; a producer already balanced (every ``s_i`` within
``TOLERANCE`` of 1) is left alone, so the pass settles.

The pass is level 3: ``ncnnc optimize`` does not run it by default (it changes weight values), ``ncnnc compile
--equalize`` runs it before calibration, and ``ncnnc optimize --only equalize`` runs it alone.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.passes import Pass
from ncnnc.core.patterns import set_weight
from ncnnc.plugins.passes.common import float_weights, param

LEVEL_EQUALIZE = 3
"""Above ``ncnnc optimize``'s default level: equalization runs only when asked for."""

TOLERANCE = 1e-3
"""A producer whose scales are all within this of 1 counts as equalized already."""

PRODUCERS = ("Convolution", "ConvolutionDepthWise")
_RELU = 1


def _is_relu(layer: Layer) -> bool:
    return layer.type == "ReLU" and float(layer.p("slope")) == 0.0


def _transparent(layer: Layer) -> bool:
    """Single-input layers that commute with a positive per-channel scale."""
    if layer.type == "Split" or _is_relu(layer):
        return True
    return layer.type == "Pooling" and layer.p("pooling_type") == 0  # max pooling


def _producer_ok(layer: Layer) -> bool:
    if layer.type not in PRODUCERS or len(layer.outputs) != 1 or not float_weights(layer):
        return False
    act = layer.p("activation_type")
    if act == _RELU:
        params = layer.p("activation_params")
        return not params or float(params[0]) == 0.0
    return act == 0 and (layer.type == "Convolution" or layer.p("group") == layer.p("num_output"))


def _consumer_ok(layer: Layer, channels: int) -> bool:
    if layer.type != "Convolution" or not float_weights(layer):
        return False
    weight = layer.weight("weight")
    return weight.size % (layer.p("num_output") * channels) == 0 and param(layer, "pad_value") == 0


def consumers_through(graph: Graph, layer: Layer, consumers: dict[str, list[Layer]]) -> list[Layer] | None:
    """The convolutions that read ``layer``'s output channels (through transparent layers), or None
    when anything else (a graph output, another layer type) also sees them."""
    found: list[Layer] = []
    stack = list(layer.outputs)
    outputs = set(graph.outputs)
    while stack:
        blob = stack.pop()
        readers = consumers.get(blob, [])
        if blob in outputs or not readers:
            return None
        for reader in readers:
            if _transparent(reader) and len(reader.inputs) == 1:
                stack.extend(reader.outputs)
            elif _consumer_ok(reader, int(layer.p("num_output"))) and len(reader.inputs) == 1:
                found.append(reader)
            else:
                return None
    return found


def _input_columns(layer: Layer, channels: int) -> np.ndarray:
    """A consumer's weight as ``(num_output, channels, rest)``."""
    w = layer.weight("weight")
    return w.reshape(int(layer.p("num_output")), channels, -1)


def equalization_scales(producer: Layer, consumers: list[Layer]) -> np.ndarray:
    """``s_i = sqrt(r1_i / r2_i)`` per channel (1 where either range is zero)."""
    channels = int(producer.p("num_output"))
    r1 = np.abs(producer.weight("weight").reshape(channels, -1)).max(axis=1).astype(np.float64)
    r2 = np.max([np.abs(_input_columns(c, channels)).max(axis=(0, 2)) for c in consumers], axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(r1 / r2)
    return np.where((r1 > 0) & (r2 > 0) & np.isfinite(s), s, 1.0).astype(np.float32)


def equalize_pair(producer: Layer, consumers: list[Layer], scales: np.ndarray) -> None:
    """Divide the producer's output channels by ``scales``, multiply the consumers' input channels by them."""
    channels = len(scales)
    w = producer.weight("weight")
    set_weight(producer, "weight", (w.reshape(channels, -1) / scales[:, None]).reshape(w.shape))
    if producer.p("bias_term"):
        set_weight(producer, "bias", producer.weight("bias") / scales)
    for c in consumers:
        w = c.weight("weight")
        set_weight(c, "weight", (_input_columns(c, channels) * scales[None, :, None]).reshape(w.shape))


class EqualizePass(Pass):
    """Cross-layer equalization of every producer/consumers group the graph has."""

    name = "equalize"
    description = "cross-layer equalization: match channel weight ranges of consecutive convolutions (fp32 identity)"
    level = LEVEL_EQUALIZE
    order = 2000

    def run(self, graph: Graph) -> list[str]:
        """Equalize each eligible producer once per round."""
        changes = []
        consumers = graph.consumer_map()
        for layer in graph.layers:
            if not _producer_ok(layer):
                continue
            readers = consumers_through(graph, layer, consumers)
            if not readers:
                continue
            scales = equalization_scales(layer, readers)
            if np.all(np.abs(scales - 1) <= TOLERANCE):
                continue
            equalize_pair(layer, readers, scales)
            changes.append(f"{layer.name} -> {', '.join(r.name for r in readers)}: {len(scales)} channels rescaled "
                           f"(scales {scales.min():.3g} ... {scales.max():.3g})")
        return changes


@hookimpl
def ncnnc_passes() -> list[Pass]:
    """The ``equalize`` pass (level 3: only when asked for)."""
    return [EqualizePass()]
