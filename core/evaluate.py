"""Compare an fp32 model and its int8 version on images: accuracy, agreement, per-layer similarity.

Labels come from the image file names: ``n01440764_tench.JPEG`` is WordNet id ``n01440764``,
whose line number (from 0) in ``synset_words.txt`` is the class index.  Each quantized layer's
output is compared fp32 vs int8 by cosine similarity per image (an int8 output of a requantizing
layer is divided by its output scale first, and one the quantizer shifted by ``-c`` for asymmetric
inputs gets ``c`` back), averaged over the images, worst layer first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph, Layer


def read_labels(path: str | Path) -> dict[str, int]:
    """``synset_words.txt`` -> ``{wordnet_id: class_index}``."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise NcnncError(f"cannot read labels: {e.strerror}", str(path)) from None
    labels = {line.split()[0]: i for i, line in enumerate(lines) if line.split()}
    if not labels:
        raise NcnncError("no labels in the file", str(path))
    return labels


def label_of(image: Path, labels: dict[str, int]) -> int:
    """The class index of an image from the WordNet id its file name starts with."""
    wnid = image.name.split("_")[0].split(".")[0]
    if wnid not in labels:
        raise NcnncError(f"the file name does not start with a WordNet id of the labels file ({wnid!r})",
                         str(image))
    return labels[wnid]


@dataclass
class EvalResult:
    """Accuracy of both models (when labels were given), their agreement, per-layer similarity."""

    images: int
    backend: str
    top1: dict[str, float] = field(default_factory=dict)
    top5: dict[str, float] = field(default_factory=dict)
    agreement: float = 0.0
    max_output_diff: float = 0.0
    layer_cosine: list[tuple[str, float]] = field(default_factory=list)
    weight_only: list[str] = field(default_factory=list)
    kept_fp32: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The result as plain JSON-ready data (``ncnnc eval --json``); fractions in [0, 1]."""
        return {"images": self.images, "backend": self.backend, "top1": self.top1, "top5": self.top5,
                "agreement": self.agreement, "max_output_diff": self.max_output_diff,
                "quantized_layers": len(self.layer_cosine), "weight_only_layers": self.weight_only,
                "kept_fp32": self.kept_fp32,
                "layer_cosine": [{"layer": name, "cosine": cos} for name, cos in self.layer_cosine]}

    def summary(self, worst: int = 10) -> str:
        """A short report: accuracy table, agreement, the worst layers."""
        lines = [f"{self.images} images, backend {self.backend}"]
        if self.top1:
            lines.append(f"  {'model':<6} {'top-1':>7} {'top-5':>7}")
            for name in ("fp32", "int8"):
                lines.append(f"  {name:<6} {100 * self.top1[name]:6.1f}% {100 * self.top5[name]:6.1f}%")
        lines.append(f"  top-1 agreement fp32 vs int8: {100 * self.agreement:.1f}%   "
                     f"largest output difference: {self.max_output_diff:.4g}")
        lines.append(f"  {quantized_count_line(len(self.layer_cosine), len(self.weight_only), len(self.kept_fp32))}")
        if self.layer_cosine:
            shown = min(worst, len(self.layer_cosine))
            lines.append(f"  quantized layers, cosine similarity fp32 vs int8 (worst {shown} "
                         f"of {len(self.layer_cosine)}):")
            lines += [f"    {cos:.5f}  {name}" for name, cos in self.layer_cosine[:worst]]
        return "\n".join(lines)


def quantized_count_line(int8: int, weight_only: int, kept_fp32: int) -> str:
    """How many layers are int8, weight-only int8 and fp32: the one wording compile and eval print."""
    return f"quantized layers: int8 {int8}, weight-only int8 {weight_only}, kept fp32 {kept_fp32}"


def int8_layers(graph: Graph) -> tuple[list[str], list[str], list[str]]:
    """The layers of a quantized graph as ``compile`` counts them: int8 (table-quantized Convolution,
    ConvolutionDepthWise, InnerProduct), weight-only int8 (RNN, Gemm ...), and quantizable layers kept fp32."""
    from ncnnc.plugins.quantizer import DYNAMIC_TYPES, STATIC_TYPES

    static, dynamic, fp32 = [], [], []
    for layer in graph.layers:
        schema = layer.params.schema
        term = layer.p("int8_scale_term") if schema and "int8_scale_term" in schema.by_name else 0
        if layer.type in STATIC_TYPES and "weight" in layer.weights:
            (static if term else fp32).append(layer.name)
        elif layer.type in DYNAMIC_TYPES and term:
            dynamic.append(layer.name)
    return static, dynamic, fp32


def _quantized_outputs(graph: Graph) -> dict[str, float]:
    """``blob -> divisor`` for the output of every int8 layer (its output scale if it requantizes)."""
    static = set(int8_layers(graph)[0])
    result = {}
    for layer in graph.layers:
        if layer.name not in static:
            continue
        top = layer.weights.get("top_int8_scales")
        result[layer.outputs[0]] = float(top.data.ravel()[0]) if top is not None and layer.p(8) > 100 else 1.0
    return result


def _lower_bound(layer: Layer | None) -> float | None:
    """The least value ``layer``'s activation lets through (0 for a ReLU), or None for an unbounded one."""
    if layer is None:
        return None
    if layer.type == "ReLU":
        return 0.0 if not layer.p("slope") else None
    if layer.type == "Clip":
        return float(layer.p("min"))
    from ncnnc.core.asymmetric import WEIGHTED_TYPES  # the layer types the quantizer shifts

    if layer.type in WEIGHTED_TYPES:
        kind = layer.p("activation_type")
        if kind == 1:
            return 0.0
        if kind == 3:
            return float(layer.p("activation_params")[0])
    return None


def _shift_offsets(fp32: Graph, int8: Graph, blobs: Iterable[str]) -> dict[str, float]:
    """``blob -> c`` for int8 outputs that the quantizer shifted by ``-c`` (``--asymmetric``: a ReLU producer
    clips at ``-c`` instead of 0), to be added back before comparing them with the fp32 model's."""
    producers32, producers8 = fp32.producers(), int8.producers()
    offsets = {}
    for blob in blobs:
        low32, low8 = _lower_bound(producers32.get(blob)), _lower_bound(producers8.get(blob))
        if low32 is not None and low8 is not None and low8 < low32:
            offsets[blob] = low32 - low8
    return offsets


class _Runner:
    """Runs one model on a batch with one backend, returning the requested blobs batched.

    ``llvm`` compiles the model for this machine (host JIT) with the requested blobs as its outputs,
    once per set of blobs.
    """

    def __init__(self, param: Path | None, binf: Path | None, graph: Graph, backend: str) -> None:
        self.backend = backend
        self.graph = graph
        self.compiled: dict[tuple[str, ...], object] = {}
        if backend == "llvm":
            pass
        elif backend == "ncnn":
            from ncnnc.backends.ncnn_runtime import RuntimeNet

            if param is None or binf is None:
                raise NcnncError("the ncnn backend runs model files: give .param/.bin paths, or use backend numpy")
            self.net = RuntimeNet(param, binf)
        elif backend == "numpy":
            from ncnnc.backends.numpy.interpreter import Interpreter

            self.interp = Interpreter(graph)
        else:
            raise NcnncError(f"unknown backend {backend!r} (ncnn, numpy or llvm)")

    def _jit(self, blobs: list[str], inputs: dict[str, np.ndarray]):
        from ncnnc.backends.llvm.jit import jit

        key = tuple(blobs)
        if key not in self.compiled:
            graph = self.graph.copy()
            graph.explicit_outputs = list(blobs)
            shapes = {k: tuple(v.shape[1:]) for k, v in inputs.items()}
            # not from the code cache: it is keyed by params and weights, not by which blobs are outputs
            self.compiled[key] = jit(graph, "host", input_shapes=shapes, use_cache=False)
        return self.compiled[key]

    def run(self, inputs: dict[str, np.ndarray], blobs: list[str]) -> dict[str, np.ndarray]:
        """The requested blobs for a batch of inputs (leading batch axis), float32."""
        if self.backend == "llvm":
            out = self._jit(blobs, inputs)(inputs)  # type: ignore[operator]
            return {b: np.asarray(out[b], np.float32) for b in blobs}
        if self.backend == "numpy":
            out = self.interp.run(inputs, blobs)
            return {b: np.asarray(v, np.float32) for b, v in out.items()}
        n = len(next(iter(inputs.values())))
        per = [self.net.run({k: v[i] for k, v in inputs.items()}, blobs) for i in range(n)]
        return {b: np.stack([p[b] for p in per]) for b in blobs}


def _graph_and_files(model: Graph | tuple[str | Path, str | Path]) -> tuple[Graph, Path | None, Path | None]:
    if isinstance(model, Graph):
        return model, None, None
    from ncnnc.frontends.ncnn import load

    return load(*model), Path(model[0]), Path(model[1])


def evaluate(fp32: Graph | tuple[str | Path, str | Path], int8: Graph | tuple[str | Path, str | Path],
             images: str | Path | Sequence[str | Path], *, labels: str | Path | None = None,
             mean: Sequence[float] = (), norm: Sequence[float] = (), shape: Sequence[int] | None = None,
             pixel: str = "BGR", backend: str = "ncnn", batch_size: int = 8, limit: int | None = None,
             progress: bool = False) -> EvalResult:
    """Evaluate ``int8`` against ``fp32`` (each ``(param, bin)`` or a graph) on ``images`` (list file,
    directory or paths).  Graphs run with the numpy or llvm backend (the ncnn runtime reads files).
    ``shape`` (ncnn's ``[w, h(, c)]``) resizes the images; None keeps the Input layer's size."""
    from tqdm import tqdm

    from ncnnc.core.calibration import batches, check_shapes, input_specs, load_batch

    (g32, p32, b32), (g8, p8, b8) = _graph_and_files(fp32), _graph_and_files(int8)
    if g32.outputs != g8.outputs or g32.inputs != g8.inputs:
        raise NcnncError(f"the models differ: inputs {g32.inputs} / {g8.inputs}, outputs {g32.outputs} / {g8.outputs}",
                         str(p8 or "<graph>"))
    specs = input_specs(g32, [images if isinstance(images, (str, Path)) else list(images)],
                        mean=[list(mean)] if mean else [], norm=[list(norm)] if norm else [],
                        shape=[list(shape)] if shape is not None else [], pixel=[pixel])
    check_shapes(g32, specs)  # a size the model cannot take: blame it, not the runtime's failed extract
    paths = specs[0].paths[:limit] if limit else specs[0].paths
    classes = [label_of(p, read_labels(labels)) for p in paths] if labels else None
    outputs = g32.outputs
    layers = _quantized_outputs(g8)
    shifts = _shift_offsets(g32, g8, layers)
    want = outputs + [b for b in layers if b not in outputs]
    r32, r8 = _Runner(p32, b32, g32, backend), _Runner(p8, b8, g8, backend)
    out32, out8, cos_sum = [], [], dict.fromkeys(layers, 0.0)
    with tqdm(total=len(paths), desc="eval", unit="img", disable=not progress) as bar:
        for indices in batches(specs, batch_size, len(paths)):
            batch = load_batch(specs, indices)
            a, b = r32.run(batch, want), r8.run(batch, want)
            out32.append(np.concatenate([a[o].reshape(len(indices), -1) for o in outputs], 1))
            out8.append(np.concatenate([b[o].reshape(len(indices), -1) for o in outputs], 1))
            for blob, divisor in layers.items():
                x = a[blob].reshape(len(indices), -1).astype(np.float64)
                y = b[blob].reshape(len(indices), -1).astype(np.float64) / divisor + shifts.get(blob, 0.0)
                den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
                cos_sum[blob] += float(np.sum(np.where(den > 0, np.sum(x * y, 1) / np.where(den > 0, den, 1), 1.0)))
            bar.update(len(indices))
    y32, y8 = np.concatenate(out32), np.concatenate(out8)
    result = EvalResult(len(paths), backend)
    result.agreement = float(np.mean(y32.argmax(1) == y8.argmax(1)))
    result.max_output_diff = float(np.abs(y32 - y8).max())
    producers = {layer.outputs[0]: layer.name for layer in g8.layers if layer.outputs}
    result.layer_cosine = sorted(((producers[b], s / len(paths)) for b, s in cos_sum.items()), key=lambda t: t[1])
    _, result.weight_only, result.kept_fp32 = int8_layers(g8)
    if classes is not None:
        truth = np.array(classes)
        for name, y in (("fp32", y32), ("int8", y8)):
            top5 = np.argsort(-y, axis=1)[:, :5]
            result.top1[name] = float(np.mean(top5[:, 0] == truth))
            result.top5[name] = float(np.mean(np.any(top5 == truth[:, None], axis=1)))
    return result
