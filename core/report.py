"""The quantization report's data: per quantized layer the activation histogram, the threshold the
int8 model uses and what other calibration methods would have chosen; accuracy; sizes.

:func:`quantization_report` gathers it from an fp32 graph, its int8 graph and some images;
:func:`ncnnc.core.report_html.write_html` turns it into one self-contained HTML file
(``ncnnc eval --report``, ``ncnnc compile --report``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ncnnc.core.calibration import INT8_MAX, Calibrator, InputSpec, collect_statistics, quant_targets
from ncnnc.core.evaluate import EvalResult, int8_layers
from ncnnc.core.ir import Graph

ALTERNATIVES = ("kl", "aciq", "minmax")
"""The calibration methods whose thresholds the report marks beside the one the model uses (ncnn2table's)."""

PLOT_BINS = 128
"""Bins of the histograms drawn (the 2048 counting bins summed in groups)."""


@dataclass
class LayerActivation:
    """One quantized layer's input activations: ``|x|`` histogram over ``[0, absmax]`` and thresholds."""

    name: str
    blob: str
    absmax: float
    counts: np.ndarray
    alternatives: dict[str, float]
    chosen: float | None = None
    cosine: float | None = None
    kept_fp32: str | None = None


@dataclass
class QuantizationReport:
    """Everything the HTML report shows, in graph order."""

    title: str
    layers: list[LayerActivation]
    evaluation: EvalResult
    fp32_bytes: int
    int8_bytes: int
    images: int
    method: str = ""


class _Alternatives(Calibrator):
    """Several calibrators fed the same batches, each for as many passes as it needs."""

    def __init__(self, members: Mapping[str, Calibrator]) -> None:
        self.members = dict(members)
        self.passes = max(c.passes for c in self.members.values())
        self.current = 0

    def _active(self) -> list[Calibrator]:
        return [c for c in self.members.values() if self.current < c.passes]

    def observe(self, batch: np.ndarray) -> None:
        """Show the batch to every member still in one of its passes."""
        for cal in self._active():
            cal.observe(batch)

    def merge(self, other: _Alternatives) -> None:
        """Merge member by member."""
        for name, cal in self.members.items():
            if self.current < cal.passes:
                cal.merge(other.members[name])

    def next_pass(self) -> None:
        """Advance the members that have another pass."""
        self.current += 1
        for cal in self._active():
            cal.next_pass()

    def threshold(self) -> float:
        """The first member's threshold (the report reads every member's)."""
        return next(iter(self.members.values())).threshold()


def _histogram(cal: Calibrator) -> tuple[float, np.ndarray]:
    """The absmax and the ``PLOT_BINS``-bin counts of a histogram calibrator (``kl``)."""
    hist = cal.hist  # type: ignore[attr-defined]
    counts = hist.counts if hist.counting else np.zeros(hist.bins, np.int64)
    return float(hist.absmax), counts.reshape(PLOT_BINS, -1).sum(axis=1)


def activation_statistics(graph: Graph, specs: Sequence[InputSpec], *, threads: int = 1,
                          limit: int | None = None) -> list[LayerActivation]:
    """For each quantized layer of the fp32 ``graph`` (model order): the ``|x|`` histogram of its input
    over the images and the thresholds of ``kl``, ``aciq`` and ``minmax`` (ncnn2table's methods)."""
    from ncnnc.core.calibration import find_calibrator

    factories = {name: find_calibrator(name) for name in ALTERNATIVES}
    targets = quant_targets(graph)
    blobs = list(dict.fromkeys(t.source for t in targets))
    stats = collect_statistics(graph, specs, blobs,
                               lambda: _Alternatives({n: f.make() for n, f in factories.items()}),
                               threads=threads, limit=limit)
    found: dict[str, LayerActivation] = {}
    out = []
    for t in targets:
        if t.source not in found:
            cal = stats[t.source]
            absmax, counts = _histogram(cal.members["kl"])  # type: ignore[attr-defined]
            thresholds = {n: float(c.threshold()) for n, c in cal.members.items()}  # type: ignore[attr-defined]
            found[t.source] = LayerActivation(t.name, t.blob, absmax, counts, thresholds)
        shared = found[t.source]
        out.append(LayerActivation(t.name, t.blob, shared.absmax, shared.counts, dict(shared.alternatives)))
    return out


def chosen_thresholds(int8: Graph) -> dict[str, float]:
    """The activation threshold ``127 / scale`` each int8 layer of the model uses."""
    out = {}
    for layer in int8.layers:
        scales = layer.weights.get("bottom_int8_scales")
        if scales is not None and layer.name in set(int8_layers(int8)[0]):
            scale = float(np.ravel(scales.data)[0])
            out[layer.name] = INT8_MAX / scale if scale > 0 else 0.0
    return out


def quantization_report(fp32: Graph, int8: Graph, specs: Sequence[InputSpec], evaluation: EvalResult, *,
                        title: str, fp32_bytes: int, int8_bytes: int, method: str = "",
                        reasons: Mapping[str, str] | None = None, threads: int = 1,
                        limit: int | None = None) -> QuantizationReport:
    """The report's data: activation statistics of ``fp32`` over the images of ``specs``, the thresholds and
    per-layer cosine of ``int8`` (from ``evaluation``), and why layers stayed fp32 (``reasons``, when known)."""
    layers = activation_statistics(fp32, specs, threads=threads, limit=limit)
    chosen = chosen_thresholds(int8)
    cosine = dict(evaluation.layer_cosine)
    fp32_kept = set(int8_layers(int8)[2])
    for layer in layers:
        layer.chosen = chosen.get(layer.name)
        layer.cosine = cosine.get(layer.name)
        if layer.name in fp32_kept:
            layer.kept_fp32 = (reasons or {}).get(layer.name, "not quantized in the int8 model (the reason is "
                                                               "recorded by ncnnc compile --report)")
    n = len(specs[0].paths) if limit is None else min(limit, len(specs[0].paths))
    return QuantizationReport(title, layers, evaluation, fp32_bytes, int8_bytes, n, method)
