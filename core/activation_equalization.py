"""Activation equalization: give every channel of a blob a similar share of its one int8 scale.

ncnn quantizes a blob with one scale for all its channels, so a channel whose values stay within a tenth of
the blob's range gets a tenth of the levels.  A producer (a Convolution or ConvolutionDepthWise, plain or with
a fused ReLU or leaky ReLU) can multiply its output channel ``i`` by ``a_i > 0`` (its weights and bias rows)
if every layer that reads the channel divides its input column ``i`` by ``a_i``: ReLU, leaky ReLU, max and
average pooling, Split and Concat (along channels) commute with a positive per-channel scale, so the network
computes the same function (up to float rounding).  The readers must all be Convolutions (per-channel input
columns) or depthwise convolutions (whose weights for channel ``i`` are a row of their own, so they lose no
precision); for a producer that feeds a Concat, the columns are the producer's slice of the concatenation.

The factors come from the calibration images (SmoothQuant's migration, Xiao et al. 2022, applied between
convolutions): with ``r_i`` the range of channel ``i`` (its ``quantile`` of ``|x|`` over the images) and
``R`` the largest channel range of the blob each reader sees, ``a_i = min((R / r_i) ** strength,
max_factor)``, never below 1.  A channel's activation error then shrinks by ``a_i`` while the reader's int8
weights in column ``i`` lose as much relative precision, so ``strength = 0.5`` splits the difference;
``max_factor`` keeps nearly dead channels from shrinking a column to nothing.  Since ``r_i * a_i <= R``, the
blob's range is unchanged and the factors of every producer can be computed from one fp32 pass.

ncnn's weights are per output channel, so the producer loses nothing.  On SqueezeNet (500 shared images) it
lowers ``--quality high``'s mean output KL divergence from 0.0032 to 0.0025; alone, before kl calibration, it
does nothing measurable (0.0075 against 0.0074): the gain shows once the activation-scale search and learned
rounding tune the layers around the finer channels (docs/quantization.md).  Bounded activations (ReLU6,
clip) and element-wise layers stop it: EfficientNet-style networks qualify only where a linear projection
feeds a convolution directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ncnnc.core.ir import Graph, Layer
from ncnnc.core.patterns import set_weight
from ncnnc.plugins.passes.common import float_weights, param

STRENGTH = 0.5
"""How much of a channel's range deficit moves into the readers' weights (0: none, 1: all)."""

MAX_FACTOR = 4.0
"""The largest factor a channel is scaled up by."""

QUANTILE = 0.9999
"""A channel's range: this quantile of its absolute values over the images (the largest few are outliers
that the blob's calibrated threshold clips anyway)."""

IMAGES = 32
"""Calibration images the ranges are measured on (spread over the set)."""

CHUNK = 8
"""Images per forward pass while measuring (bounds the memory of one pass)."""


@dataclass
class Group:
    """A producer and the convolutions that read its output channels, each with the channel offset of the
    producer's slice in the blob the reader sees (0 unless a Concat puts other channels first) and that
    blob's channel count."""

    producer: Layer
    readers: list[tuple[Layer, int, int]]


def _commutes(layer: Layer) -> bool:
    """Single-input layers that commute with a positive per-channel scale and keep channel positions: Split,
    ReLU and leaky ReLU (``relu(a x) = a relu(x)`` for ``a > 0``), max and average pooling."""
    return layer.type in ("Split", "ReLU", "Pooling")


def _producer_ok(layer: Layer) -> bool:
    if layer.type not in ("Convolution", "ConvolutionDepthWise") or len(layer.outputs) != 1:
        return False
    return float_weights(layer) and layer.p("activation_type") in (0, 1, 2)  # none, ReLU, leaky ReLU


def _depthwise(layer: Layer, channels: int) -> bool:
    """A ConvolutionDepthWise with one group per channel: its input channel ``i`` meets only weight row ``i``."""
    return layer.type == "ConvolutionDepthWise" and int(layer.p("group")) == int(layer.p("num_output")) == channels


def _reader_ok(layer: Layer, channels: int) -> bool:
    if len(layer.inputs) != 1 or not float_weights(layer) or param(layer, "pad_value") != 0:
        return False
    if layer.type == "Convolution":
        return layer.weight("weight").size % (int(layer.p("num_output")) * channels) == 0
    return _depthwise(layer, channels)


def _readers(graph: Graph, producer: Layer, channels: Mapping[str, int],
             consumers: Mapping[str, list[Layer]]) -> list[tuple[Layer, int, int]] | None:
    """The readers of ``producer``'s channels as ``(reader, offset, width)``, or None when anything else
    (a graph output, another layer type, a blob of unknown shape) also sees them."""
    outputs = set(graph.outputs)
    found: list[tuple[Layer, int, int]] = []
    stack = [(producer.outputs[0], 0)]
    while stack:
        blob, offset = stack.pop()
        if blob in outputs or not consumers.get(blob) or blob not in channels:
            return None
        for reader in consumers[blob]:
            if _commutes(reader) and len(reader.inputs) == 1:
                stack.extend((out, offset) for out in reader.outputs)
            elif (reader.type == "Concat" and int(reader.p("axis")) == 0 and reader.inputs.count(blob) == 1
                  and set(reader.inputs) <= channels.keys()):
                before = reader.inputs[:reader.inputs.index(blob)]
                stack.append((reader.outputs[0], offset + sum(channels[b] for b in before)))
            elif _reader_ok(reader, channels[blob]):
                found.append((reader, offset, channels[blob]))
            else:
                return None
    return found


def groups(graph: Graph, channels: Mapping[str, int]) -> list[Group]:
    """Every producer whose output channels reach only plain or depthwise Convolutions (through the layers of
    :func:`_commutes` and channel Concat), with those readers; ``channels`` gives each 3-D blob's channel
    count."""
    consumers = graph.consumer_map()
    found = []
    for layer in graph.layers:
        if _producer_ok(layer) and layer.outputs[0] in channels:
            readers = _readers(graph, layer, channels, consumers)
            if readers:
                found.append(Group(layer, readers))
    return found


class _TopK:
    """The ``k`` largest absolute values per channel of a stream of ``(N, C, ...)`` batches."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.top: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        values = np.abs(x).swapaxes(0, 1).reshape(x.shape[1], -1)
        if self.top is not None:
            values = np.concatenate([self.top, values], axis=1)
        k = min(self.k, values.shape[1])
        self.top = np.partition(values, values.shape[1] - k, axis=1)[:, -k:]

    def smallest(self) -> np.ndarray:
        """The ``k``-th largest value of each channel."""
        return self.top.min(axis=1).astype(np.float64)


def channel_ranges(graph: Graph, inputs: Mapping[str, np.ndarray], blobs: list[str], quantile: float = QUANTILE,
                   chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """Per channel of each of ``blobs`` (3-D, ``(C, H, W)``), the ``quantile`` of its absolute values over the
    batched ``inputs``, streamed ``chunk`` images at a time."""
    from ncnnc.backends.numpy.interpreter import Interpreter

    count = len(next(iter(inputs.values())))
    run = Interpreter(graph)
    top: dict[str, _TopK] = {}

    def observe(name: str, value: np.ndarray) -> None:
        if name not in top:
            per_channel = count * int(np.prod(value.shape[2:]))
            top[name] = _TopK(max(1, int(np.ceil(per_channel * (1.0 - quantile)))))
        top[name].add(value)

    for start in range(0, count, chunk):
        run.run({k: v[start:start + chunk] for k, v in inputs.items()}, blobs, observe=observe, keep=())
    return {name: t.smallest() for name, t in top.items()}


def factors(channel_range: np.ndarray, reader_range: float, strength: float = STRENGTH,
            max_factor: float = MAX_FACTOR) -> np.ndarray:
    """``a_i = clip((R / r_i) ** strength, 1, max_factor)`` (1 where the channel is never nonzero)."""
    ratio = np.where(channel_range > 0, reader_range / np.maximum(channel_range, 1e-30), 1.0)
    return np.clip(ratio ** strength, 1.0, max_factor).astype(np.float32)


def rescale(group: Group, a: np.ndarray) -> None:
    """Multiply the producer's output channels by ``a``, divide the readers' matching input columns by it."""
    producer = group.producer
    c = len(a)
    w = producer.weight("weight")
    set_weight(producer, "weight", (w.reshape(c, -1) * a[:, None]).reshape(w.shape))
    if producer.p("bias_term"):
        set_weight(producer, "bias", producer.weight("bias") * a)
    for reader, offset, width in group.readers:
        w = reader.weight("weight")
        rows = 1 if _depthwise(reader, width) else int(reader.p("num_output"))
        columns = w.reshape(rows, width, -1).copy()
        columns[:, offset:offset + c] /= a[None, :, None]
        set_weight(reader, "weight", columns.reshape(w.shape))


def equalize_activations(graph: Graph, inputs: Mapping[str, np.ndarray], *, strength: float = STRENGTH,
                         max_factor: float = MAX_FACTOR, quantile: float = QUANTILE) -> list[str]:
    """Rescale every eligible producer/readers group of ``graph`` in place from its channel ranges on the
    batched ``inputs`` (fp32 identity); one line per group changed."""
    from ncnnc.core.errors import NcnncError
    from ncnnc.core.shapes import infer_shapes

    try:
        shapes = infer_shapes(graph.copy(), {k: tuple(np.shape(v)[1:]) for k, v in inputs.items()})
    except NcnncError:
        return []
    channels = {b: int(s[0]) for b, s in shapes.items() if len(s) == 3}
    found = groups(graph, channels)
    if not found:
        return []
    blobs = sorted({g.producer.outputs[0] for g in found} | {r.inputs[0] for g in found for r, _, _ in g.readers})
    ranges = channel_ranges(graph, inputs, blobs, quantile)
    changes = []
    for group in found:
        reader_range = max(float(ranges[r.inputs[0]].max()) for r, _, _ in group.readers)
        a = factors(ranges[group.producer.outputs[0]], reader_range, strength, max_factor)
        if np.all(a == 1.0):
            continue
        rescale(group, a)
        changes.append(f"{group.producer.name} -> {', '.join(r.name for r, _, _ in group.readers)}: "
                       f"{int(np.sum(a > 1))}/{len(a)} channels scaled up (median {np.median(a):.2f}, "
                       f"largest {a.max():.2f})")
    return changes
