"""Refine steps: after calibration and before quantization, adjust fp32 weights and biases so that the
int8 model (as the stock ncnn runtime computes it) comes closer to the fp32 one.

The contract (what a refiner plugin provides, through the ``ncnnc_refiners`` hook): a :class:`Refiner`
names the method and gives ``refine_layer(step)``, called once per quantized layer in model order with a
:class:`LayerStep`: the layer (to change in place: its ``weight`` and ``bias``), its table scales, and its
input on the calibration images twice, as the fp32 model computes it and as the model quantized so far
computes it (every earlier quantized layer already refined, and run as its int8 weights over their
scales on its dequantized int8 input: the int8 result up to float rounding).  A refiner may also change
``step.weight_scales`` and ``step.input_scale`` (they go into the table; an input scale goes to every
quantized layer reading the same blob, ``step.input_shared``, since the runtime requantizes a blob once).
Refiners run in ``order`` for each layer before the
walk moves on, so a later layer sees the errors the earlier ones leave.

:func:`refine_graph` walks the graph once over the images held in memory (two copies of the live
activations, freed after their last reader), so refining costs about two forward passes plus what
the refiners compute.  Weight changes must keep the quantizer's weights well defined: a refiner that
chooses int8 weights stores ``q / scale`` in float32, which the quantizer rounds back to exactly ``q``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ncnnc.core.calibration import CalibratorParam, quant_targets, weight_bits_max
from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.table import CalibrationTable
from ncnnc.core.winograd import is_winograd_conv

CHUNK = 8
"""Images per layer call in the walk (bounds the temporary memory of one layer)."""


@dataclass
class LayerStep:
    """One quantized layer during the walk: what a refiner may read and change.

    ``layer`` is the graph's layer (refiners change its weights in place); ``x_fp32`` its input in the fp32
    model, ``x_quant`` its input in the model quantized so far (float, ``(N, ...)``).  ``params`` are
    the resolved parameters of every refiner of the walk, ``methods`` the names of those refiners;
    ``cache`` lets refiners of one layer share what they computed (input patch statistics).
    """

    layer: Layer
    weight_scales: np.ndarray
    input_scale: float
    x_fp32: np.ndarray
    x_quant: np.ndarray
    params: dict[str, Any]
    methods: tuple[str, ...] = ()
    cache: dict[str, Any] = field(default_factory=dict)
    input_shared: tuple[tuple[Layer, np.ndarray], ...] = ()
    """Other quantized layers that read the same values (through Split), with their weight scales: the runtime
    requantizes the producer's output once, to one reader's scale, so their input scales must stay equal to
    this one's; the walk gives them this layer's ``input_scale``."""
    input_scale_fixed: bool = False
    """True when an earlier layer of ``input_shared`` set the input scale already (it must not change)."""
    winograd_bits: int = 6
    """How the table quantized winograd convolutions (:func:`~ncnnc.core.calibration.weight_scales`)."""
    asymmetric: bool = False
    """Whether the quantizer gives this layer's input 255 levels (:mod:`ncnnc.core.asymmetric`)."""

    @property
    def qmax(self) -> int:
        """The largest int8 weight magnitude (31 for ncnn2table's 6-bit winograd convolutions)."""
        return weight_bits_max(self.layer, self.winograd_bits)

    @property
    def winograd_budget(self) -> bool:
        """Whether each output channel's ``sum |q|`` must stay within
        :data:`~ncnnc.core.winograd.WINOGRAD_SUM_LIMIT` (8-bit winograd convolutions)."""
        return self.winograd_bits == 8 and is_winograd_conv(self.layer)

    def dequantized_input(self) -> np.ndarray:
        """``x_quant`` as the int8 layer sees it: ``float2int8(x * scale) / scale`` (computed once)."""
        if "x_hat" not in self.cache:
            self.cache["x_hat"] = dequantize_input(self.x_quant, self.input_scale, self.asymmetric)
        return self.cache["x_hat"]


def dequantize_input(x: np.ndarray, scale: float, asymmetric: bool = False) -> np.ndarray:
    """``float2int8(x * scale) / scale`` in float32: the values an int8 layer computes with; with
    ``asymmetric`` those of a shifted input, ``float2int8((x - c) * 2 scale) / (2 scale) + c``
    (:mod:`ncnnc.core.asymmetric`)."""
    from ncnnc.core.int8 import float2int8

    if asymmetric:
        from ncnnc.core.asymmetric import shift_offset

        c, s = shift_offset(scale), np.float32(2 * scale)
        return (float2int8((x - c) * s).astype(np.float32) / s + c).astype(np.float32)
    s = np.float32(scale)
    return float2int8(x * s).astype(np.float32) / s


def fake_quantized(layer: Layer, weight_scales: np.ndarray) -> Layer:
    """A float copy of ``layer`` whose weights are its int8 weights divided by their scales.

    Run on :func:`dequantize_input`'s values it gives the int8 layer's output up to float rounding
    (about 1e-7 relative), much faster than the exact simulation; the walk uses it for the
    quantized model's activations.
    """
    from ncnnc.core.calibration import weight_rows
    from ncnnc.core.int8 import quantize_rows

    copy = layer.clone()
    rows = weight_rows(layer)
    s = np.asarray(weight_scales, np.float32).reshape(-1, 1)
    q = quantize_rows(rows, s.ravel()).reshape(rows.shape).astype(np.float32)
    copy.weights["weight"] = Weight((q / s).reshape(layer.weight("weight").shape), "fp32")
    return copy


@dataclass(frozen=True)
class Refiner:
    """A refine method as a plugin registers it: ``refine_layer(step)`` returns a short note (or None)."""

    name: str
    description: str
    refine_layer: Callable[[LayerStep], str | None]
    order: int = 100
    params: tuple[CalibratorParam, ...] = ()


@dataclass
class RefineReport:
    """Seconds spent per refiner (and in the walk's own forward passes), and a note per layer."""

    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    images: int = 0
    layers: int = 0


def find_refiner(name: str) -> Refiner:
    """The registered refiner called ``name`` (a user error listing the choices)."""
    from ncnnc.core.registry import registry

    return registry().get("refiners", name)


def resolve_params(refiners: Sequence[Refiner], values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every refiner's parameter defaults, overridden by ``values`` (unknown names are a user error)."""
    known = {p.name: p for r in refiners for p in r.params}
    out = {name: p.default for name, p in known.items()}
    for key, value in (values or {}).items():
        if key not in known:
            raise NcnncError(f"no refine parameter {key!r} (parameters: {', '.join(known) or 'none'})")
        out[key] = known[key].parse(value)
    return out


def run_op(layer: Layer, args: Sequence[np.ndarray]) -> np.ndarray:
    """Run one layer with the numpy backend, ``CHUNK`` images at a time."""
    from ncnnc.backends.numpy import make_op

    op = make_op(layer)
    n = args[0].shape[0] if args else 1
    parts = []
    for start in range(0, n, CHUNK):
        out = op.run(*(a[start:start + CHUNK] for a in args))
        if not isinstance(out, np.ndarray):
            raise NcnncError(f"{layer.type} layers with several outputs are not supported by the refine walk",
                             where=f"layer {layer.name}")
        parts.append(np.asarray(out))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _run_outputs(layer: Layer, args: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Every output of one layer (a layer without inputs, such as MemoryData, broadcast to ``batch``)."""
    from ncnnc.backends.numpy import make_op

    op = make_op(layer)
    if not args:
        out = op.run()
        outs = [out] if isinstance(out, np.ndarray) else list(out)
        return [np.broadcast_to(o, (batch, *o.shape[1:])) for o in outs]
    n = args[0].shape[0]
    pieces: list[list[np.ndarray]] = []
    for start in range(0, n, CHUNK):
        out = op.run(*(a[start:start + CHUNK] for a in args))
        pieces.append([out] if isinstance(out, np.ndarray) else list(out))
    return [np.concatenate([p[i] for p in pieces]) if len(pieces) > 1 else pieces[0][i]
            for i in range(len(layer.outputs))]


def _split_sources(graph: Graph) -> dict[str, str]:
    """Each Split output blob -> the blob the Split copies (followed through chained Splits)."""
    out: dict[str, str] = {}
    for layer in graph.layers:
        if layer.type == "Split":
            src = out.get(layer.inputs[0], layer.inputs[0])
            out.update({b: src for b in layer.outputs})
    return out


def refine_graph(graph: Graph, table: CalibrationTable, inputs: Mapping[str, np.ndarray],
                 refiners: Sequence[Refiner], params: Mapping[str, Any] | None = None,
                 fp32_layers: Iterable[str] = (),
                 progress: Callable[[str], None] | None = None, winograd_bits: int = 6,
                 asymmetric: bool = False) -> RefineReport:
    """Walk ``graph`` over batched ``inputs`` and let ``refiners`` adjust each quantized layer in place.

    Layers in ``fp32_layers``, commented out in ``table``, without scales, or that the quantizer keeps fp32
    anyway (1x1 convolutions of 1-D blobs) stay fp32 in the simulated quantized model and are not refined.
    ``winograd_bits`` says how ``table`` quantized the winograd convolutions (refiners keep them within what
    the runtime computes exactly); with ``asymmetric`` the layers the quantizer will shift
    (:func:`~ncnnc.core.asymmetric.shifted_layers`) see their inputs so.
    """
    from ncnnc.backends.numpy.blas import single_thread
    from ncnnc.plugins.quantizer import one_d_convolutions

    report = RefineReport(images=len(next(iter(inputs.values()))))
    resolved = resolve_params(refiners, params)
    ordered = sorted(refiners, key=lambda r: r.order)
    report.seconds = {r.name: 0.0 for r in ordered} | {"walk": 0.0}
    batch_shapes = {k: tuple(np.shape(v)[1:]) for k, v in inputs.items()}
    keep = set(fp32_layers) | set(table.commented) | set(one_d_convolutions(graph, batch_shapes))
    quantized = {t.name for t in quant_targets(graph)
                 if t.name in table.input_scales and t.name in table.weight_scales and t.name not in keep}
    if asymmetric:
        from ncnnc.core.asymmetric import shifted_layers

        shifted = shifted_layers(graph, table, quantized)
    else:
        shifted = set()
    last = {b: i for i, layer in enumerate(graph.layers) for b in layer.inputs}
    source = _split_sources(graph)
    readers: dict[str, list[str]] = {}
    for layer in graph.layers:
        if layer.name in quantized:
            readers.setdefault(source.get(layer.inputs[0], layer.inputs[0]), []).append(layer.name)
    visited: set[str] = set()
    fp: dict[str, np.ndarray] = {k: np.asarray(v, np.float32) for k, v in inputs.items()}
    qs: dict[str, np.ndarray] = dict(fp)
    with single_thread():
        for index, layer in enumerate(graph.layers):
            if layer.type == "Input":
                continue
            t = time.perf_counter()
            xf, xq = [fp[b] for b in layer.inputs], [qs[b] for b in layer.inputs]
            if layer.name in quantized:
                ws, s_in = table.weight_scales[layer.name], table.input_scales[layer.name]
                out_f = [run_op(layer, xf)]
                step = LayerStep(layer, ws, s_in, xf[0], xq[0], resolved, tuple(r.name for r in ordered),
                                 winograd_bits=winograd_bits, asymmetric=layer.name in shifted)
                shared = [n for n in readers[source.get(layer.inputs[0], layer.inputs[0])] if n != layer.name]
                step.input_shared = tuple((graph.layer(n), table.weight_scales[n]) for n in shared)
                step.input_scale_fixed = any(n in visited for n in shared)
                visited.add(layer.name)
                report.seconds["walk"] += time.perf_counter() - t
                for refiner in ordered:
                    t = time.perf_counter()
                    note = refiner.refine_layer(step)
                    report.seconds[refiner.name] += time.perf_counter() - t
                    if note:
                        report.notes.setdefault(layer.name, []).append(f"{refiner.name}: {note}")
                t = time.perf_counter()
                table.weight_scales[layer.name] = np.asarray(step.weight_scales, np.float32)
                for name in (layer.name, *(other.name for other, _ in step.input_shared)):
                    table.input_scales[name] = float(step.input_scale)
                out_q = [run_op(fake_quantized(layer, step.weight_scales), [step.dequantized_input()])]
                report.layers += 1
                if progress:
                    progress(layer.name)
            else:
                out_f = _run_outputs(layer, xf, report.images)
                same = all(a is b for a, b in zip(xf, xq))
                out_q = out_f if same else _run_outputs(layer, xq, report.images)
            for blob in layer.inputs:
                if last.get(blob, -1) <= index:
                    fp.pop(blob, None)
                    qs.pop(blob, None)
            for blob, vf, vq in zip(layer.outputs, out_f, out_q):
                if last.get(blob, -1) > index:
                    fp[blob], qs[blob] = vf, vq
            report.seconds["walk"] += time.perf_counter() - t
    return report
