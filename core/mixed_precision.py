"""Automatic mixed precision: keep the layers int8 hurts most in fp32 until the output is close enough.

1. Sensitivity: for each layer the table would quantize, the network output is computed with only
   that layer int8 (the numpy backend's int8 simulation) and compared with the fp32 output by
   cosine similarity, per image.  The fp32 activations before the layer are computed once and
   reused, so each layer costs only the part of the network after it.
2. Search: layers are ordered from most to least sensitive; the smallest number of leading layers
   kept fp32 such that the whole mixed model reaches the target is found by bisection.
3. Pruning (``prune``, the default): the layers bisection chose are tried back in int8 one at a time,
   least sensitive first, and each stays int8 if the mixed model still reaches the target
   (:func:`prune_fp32_layers`).  The ranking measures each layer alone, so a leading set can hold a
   layer the others already make unnecessary.

The criterion is the cosine similarity of the graph outputs (each output of one image flattened, the
worst output counting; a detection layer's inputs instead of its rows) on the worst calibration image,
so no single image and no single output may drift further than the target.

Small layers that read a 1-D vector (a global pooling's output: squeeze-excitation blocks) stay fp32
without being measured (:func:`vector_input_layers`): their calibration sees one value per channel per
image, so the scale is the largest of a few dozen samples and unseen images exceed it, saturating a whole
channel (PP-OCRv5 det: a 64-image threshold of 12.8, later images up to 16.5; the worst of 500 images at
output cosine 0.95 with these layers int8, 0.993 with them fp32), an error the calibration images
themselves cannot show; and int8 saves little there (at most :data:`VECTOR_MAX_SHARE` of the weights).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ncnnc.core.ir import Graph
from ncnnc.core.table import CalibrationTable

Progress = Callable[[str], None]

AMP_CANDIDATES = 4
"""Auto mixed precision measures on the ``amp_images`` hardest of up to ``AMP_CANDIDATES`` times as many
calibration images (hardest: lowest all-int8 output cosine)."""

DEFAULT_TARGET_COS = 0.995
"""Default target: on SqueezeNet, 0.99 still lost 0.6 top-1 points on the 500 shared images, 0.995 none."""


@dataclass
class MixedPrecisionReport:
    """The outcome: which layers stay fp32 and why, and the output similarity before and after."""

    target: float
    sensitivity: dict[str, float] = field(default_factory=dict)
    fp32_layers: dict[str, str] = field(default_factory=dict)
    int8_cosine: float = 1.0
    final_cosine: float = 1.0

    def summary(self) -> str:
        """A few lines for the command line."""
        head = (f"auto mixed precision: worst-image output cosine {self.int8_cosine:.5f} all int8 -> "
                f"{self.final_cosine:.5f} with {len(self.fp32_layers)} layer(s) fp32 (target {self.target})")
        return "\n".join([head, *(f"  fp32 {name}: {why}" for name, why in self.fp32_layers.items())])


def output_cosine(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-image cosine similarity of the outputs: each output flattened on its own, the worst output
    counting (so a small second output, a mask or a box regression, is not drowned by a larger one)."""
    worst = None
    for k in reference:
        ref = np.asarray(reference[k], np.float64).reshape(len(reference[k]), -1)
        can = np.asarray(candidate[k], np.float64).reshape(len(candidate[k]), -1)
        num = np.sum(ref * can, axis=1)
        den = np.linalg.norm(ref, axis=1) * np.linalg.norm(can, axis=1)
        cos = np.where(den > 0, num / np.where(den > 0, den, 1), np.where(np.all(ref == can, axis=1), 1.0, 0.0))
        worst = cos if worst is None else np.minimum(worst, cos)
    return worst


def compared_blobs(graph: Graph) -> list[str]:
    """The blobs whose fp32/int8 agreement is measured: the graph outputs, except that the output of a
    detection layer (data-dependent rows: boxes, proposals) is replaced by that layer's inputs, the
    network's raw predictions, which have a fixed shape and change smoothly with the weights."""
    from ncnnc.core.shapes_extra import DATA_DEPENDENT

    producers = graph.producers()
    inputs = set(graph.inputs)

    def detection_layer(blob: str):
        layer = producers.get(blob)
        while layer is not None and layer.type == "Split":
            layer = producers.get(layer.inputs[0])
        return layer if layer is not None and layer.type in DATA_DEPENDENT else None

    out: list[str] = []
    stack = list(reversed(graph.outputs))
    while stack:
        blob = stack.pop()
        layer = detection_layer(blob)
        if layer is not None:
            stack.extend(reversed([b for b in layer.inputs if b not in inputs]))
        elif blob not in out and blob not in inputs:
            out.append(blob)
    return out


VECTOR_REASON = ("reads a 1-D vector (after a global pooling): calibration sees one value per channel per image, "
                 "so its scale does not generalise to unseen images; kept fp32 by auto mixed precision")

VECTOR_MAX_SHARE = 0.05
"""A vector-input layer is kept fp32 unmeasured only if its weights are at most this share of the weights
of all the layers with table scales: squeeze-excitation blocks are under it (PP-OCRv5 det's largest 3.2 %;
MobileNetV3-Large's about 4 % by its layer sizes); classifier heads are over it (by layer sizes, 8 % of
ResNet-50, over 20 % of MobileNets and EfficientNet-Lite0) and are measured like any other layer, their
int8 saving being large."""


def vector_input_layers(graph: Graph, table: CalibrationTable, inputs: Mapping[str, np.ndarray], *,
                        max_share: float = VECTOR_MAX_SHARE) -> list[str]:
    """The layers with table scales whose input is a 1-D blob for the batched ``inputs``' shapes and whose
    weights are at most ``max_share`` of all such layers' weights (none if the shapes cannot be inferred)."""
    from ncnnc.core.errors import NcnncError
    from ncnnc.core.shapes import infer_shapes

    try:
        shapes = infer_shapes(graph.copy(), {k: tuple(np.shape(v)[1:]) for k, v in inputs.items()})
    except NcnncError:
        return []
    scaled = [layer for layer in graph.layers if layer.name in table.input_scales and layer.inputs]
    size = {layer.name: sum(int(w.data.size) for w in layer.weights.values()) for layer in scaled}
    total = sum(size.values())
    return [layer.name for layer in scaled
            if len(shapes.get(layer.inputs[0], (0, 0))) == 1 and size[layer.name] <= max_share * total]


def hardest_images(graph: Graph, table: CalibrationTable, inputs: Mapping[str, np.ndarray], count: int, *,
                   fp32_layers: Iterable[str] = (), asymmetric: bool = False) -> dict[str, np.ndarray]:
    """The ``count`` images of the batch ``inputs`` whose outputs the all-int8 model (but ``fp32_layers``)
    drifts furthest from fp32 on: the worst-image criterion then generalises to images like them (a
    text detector's nearly empty probability maps, a detector's crowded scenes).  The vector-input layers
    count as fp32, as :func:`choose_fp32_layers` keeps them.  ``asymmetric``: quantized as
    ``quantize(asymmetric=True)`` does."""
    from ncnnc.backends.numpy.interpreter import Interpreter
    from ncnnc.plugins.quantizer import quantize

    first = next(iter(inputs.values()))
    if len(first) <= count:
        return dict(inputs)
    outputs = compared_blobs(graph)
    fixed = set(fp32_layers) | set(table.commented) | set(vector_input_layers(graph, table, inputs))
    int8 = quantize(graph, table, fp32_layers=fixed, asymmetric=asymmetric).graph
    fp32_run, int8_run = Interpreter(graph), Interpreter(int8)
    cos = []
    for start in range(0, len(first), count):  # a batch at a time: the candidates may be many large images
        chunk = {k: v[start:start + count] for k, v in inputs.items()}
        cos.append(output_cosine(fp32_run.run(chunk, outputs), int8_run.run(chunk, outputs)))
    picks = np.sort(np.argsort(np.concatenate(cos), kind="stable")[:count])
    return {k: v[picks] for k, v in inputs.items()}


def _frontier(graph: Graph, index: int) -> list[str]:
    """Blobs produced before layer ``index`` that it or a later layer reads (or that are outputs)."""
    produced = [b for layer in graph.layers[:index] for b in layer.outputs]
    later = {b for layer in graph.layers[index:] for b in layer.inputs} | set(graph.outputs)
    return [b for b in produced if b in later]


def prune_fp32_layers(chosen: list[str], score: Callable[[list[str]], float], target: float,
                      best: float) -> tuple[list[str], float]:
    """Drop layers from ``chosen`` (most sensitive first) while ``score`` of the rest stays at ``target``.

    Each layer is tried once, from the last of ``chosen`` (the least sensitive) to the first; a layer
    is dropped when ``score`` (the criterion with the remaining layers fp32) is still at least
    ``target``.  ``best`` is the score of ``chosen``.  Returns the kept layers (in ``chosen``'s order)
    and their score.
    """
    kept = list(chosen)
    for name in reversed(chosen):
        trial = [c for c in kept if c != name]
        value = score(trial)
        if value >= target:
            kept, best = trial, value
    return kept, best


def choose_fp32_layers(graph: Graph, table: CalibrationTable, inputs: Mapping[str, np.ndarray], *,
                       target_cos: float = DEFAULT_TARGET_COS, fp32_layers: Iterable[str] = (),
                       keep_vectors: bool = True, prune: bool = True, asymmetric: bool = False,
                       progress: Progress | None = None) -> MixedPrecisionReport:
    """Find the layers to keep fp32 so that the mixed model's outputs reach ``target_cos``.

    ``inputs`` are batched calibration inputs (``(N, c, h, w)`` per graph input); ``fp32_layers``
    are fp32 already (user's choice) and are not candidates; with ``keep_vectors`` neither are the
    layers reading a 1-D vector, which are kept fp32 (:data:`VECTOR_REASON`).  With ``prune`` the
    bisection's layers are tried back in int8 one at a time (:func:`prune_fp32_layers`).  With
    ``asymmetric`` the mixed models are quantized as ``quantize(asymmetric=True)`` does.
    """
    from ncnnc.backends.numpy.interpreter import Interpreter
    from ncnnc.core.asymmetric import shifted_layers
    from ncnnc.plugins.quantizer import quantize

    fixed = set(fp32_layers) | set(table.commented)
    report = MixedPrecisionReport(target_cos)
    if keep_vectors:
        for name in vector_input_layers(graph, table, inputs):
            if name not in fixed:
                report.fp32_layers[name] = VECTOR_REASON
                fixed.add(name)
    candidates = [layer.name for layer in graph.layers
                  if layer.name in table.input_scales and layer.name in table.weight_scales and layer.name not in fixed]
    outputs = compared_blobs(graph)
    reference = Interpreter(graph).run(dict(inputs), outputs)

    def worst(keep_fp32: Iterable[str], feed: Mapping[str, np.ndarray], pinned: set[str] = fixed) -> float:
        mixed = quantize(graph, table, fp32_layers=set(keep_fp32) | pinned, asymmetric=asymmetric).graph
        return float(output_cosine(reference, Interpreter(mixed).run(dict(feed), outputs)).min())

    fp32 = Interpreter(graph)
    index = {layer.name: i for i, layer in enumerate(graph.layers)}
    state = dict(inputs)
    for n, name in enumerate(candidates, 1):
        frontier = _frontier(graph, index[name])
        state = {b: state[b] for b in frontier if b in state} | fp32.run(state, [b for b in frontier if b not in state])
        # the mixed model from the frontier on, fed the fp32 model's blobs there; but when its one int8 layer
        # reads a shifted input, the fp32 producers before it output ``x - c`` in the mixed model: from the inputs
        shifted = asymmetric and name in shifted_layers(graph, table, {name})
        report.sensitivity[name] = worst([c for c in candidates if c != name], inputs if shifted else state)
        if progress:
            progress(f"sensitivity {n}/{len(candidates)}: {name} {report.sensitivity[name]:.5f}")
    order = sorted(candidates, key=lambda c: report.sensitivity[c])
    best = worst([], inputs)
    report.int8_cosine = worst([], inputs, set(fp32_layers) | set(table.commented)) if report.fp32_layers else best
    lo, hi = 0, len(order)
    if best < target_cos:
        results = {0: best}
        while lo < hi:
            mid = (lo + hi) // 2
            if mid not in results:
                results[mid] = worst(order[:mid], inputs)
                if progress:
                    progress(f"mixed precision: {mid} layer(s) fp32 -> {results[mid]:.5f}")
            lo, hi = (lo, mid) if results[mid] >= target_cos else (mid + 1, hi)
        best = results.get(lo, 1.0) if lo < len(order) else worst(order, inputs)
        chosen = order[:lo]
        if prune and best >= target_cos and len(chosen) > 1:
            def score(keep: list[str]) -> float:
                value = worst(keep, inputs)
                if progress:
                    progress(f"pruning: {len(keep)} layer(s) fp32 -> {value:.5f}")
                return value

            chosen, best = prune_fp32_layers(chosen, score, target_cos, best)
        for name in chosen:
            report.fp32_layers[name] = (f"most sensitive: worst-image output cosine {report.sensitivity[name]:.5f} "
                                        f"with only this layer int8")
    report.final_cosine = best
    return report
