"""The whole pipeline in one call: load -> optimize -> calibrate -> (mixed precision) -> quantize -> write.

>>> import ncnnc  # doctest: +SKIP
>>> result = ncnnc.compile(["squeezenet_v1.1.param", "squeezenet_v1.1.bin"], calib="images/",
...                        mean=[104, 117, 123], norm=[1, 1, 1], shape=[227, 227, 3], out_dir="out")
>>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncnnc.core.backend import Target
from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph
from ncnnc.core.mixed_precision import DEFAULT_TARGET_COS
from ncnnc.core.table import WEIGHT_SUFFIX, CalibrationTable

if TYPE_CHECKING:
    from ncnnc.backends.llvm.build import Built
    from ncnnc.core.mixed_precision import MixedPrecisionReport
    from ncnnc.plugins.quantizer import QuantizeReport

OUTPUT_NAMES = ("model.param", "model.bin", "model.table")

REPORT_IMAGES = 16
"""Calibration images the compile report measures activations and per-layer cosine on."""


@dataclass
class CompileResult:
    """The compiled graph, its table, what each stage did and how long it took."""

    graph: Graph
    table: CalibrationTable | None
    stages: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    fp32_bytes: int = 0
    out_bytes: int = 0
    written: list[Path] = field(default_factory=list)
    quantize_report: QuantizeReport | None = None
    mixed_precision: MixedPrecisionReport | None = None
    built: Built | None = None

    def summary(self) -> str:
        """The closing summary: per stage time and outcome, sizes, files written."""
        width = max([16, *(len(stage) + 1 for stage in self.stages)])
        lines = [f"  {stage:<{width}}{seconds:7.2f} s  {self.notes.get(stage, '')}"
                 for stage, seconds in self.stages.items()]
        ratio = self.out_bytes / self.fp32_bytes if self.fp32_bytes else 0.0
        lines.append(f"  size: fp32 .bin {self.fp32_bytes} bytes -> {self.out_bytes} bytes ({ratio:.3f}x)")
        if self.written:
            lines.append("  wrote " + ", ".join(str(p) for p in self.written))
        return "\n".join(lines)


def _comment_out(table: CalibrationTable, names: Iterable[str]) -> CalibrationTable:
    """A copy of ``table`` with the lines of ``names`` commented out (they stay fp32 when re-quantized)."""
    out = CalibrationTable(dict(table.weight_scales), dict(table.input_scales), set(table.commented),
                           list(table.comments))
    for name in names:
        if name in out.weight_scales:
            scales = out.weight_scales.pop(name)
            out.comments.append(f"#{name}{WEIGHT_SUFFIX} " + " ".join(f"{float(s):f}" for s in np.ravel(scales)))
        if name in out.input_scales:
            out.comments.append(f"#{name} {out.input_scales.pop(name):f}")
        out.commented.add(name)
    return out


def _fp32_size(graph: Graph) -> int:
    from ncnnc.backends.ncnn_writer import bin_bytes, convert_storage

    copy = graph.copy()
    convert_storage(copy, "fp32")
    return len(bin_bytes(copy))


def _check_fp32_layers(graph: Graph, names: Iterable[str], source: str,
                       loaded: dict[str, str | None] | None = None) -> None:
    """A user error for a ``--fp32-layers`` name ``graph`` does not have (before calibration, not after it).
    ``loaded`` maps the names before optimizing to the layer that fed each one, to say where a fused layer went."""
    from ncnnc.plugins.quantizer import DYNAMIC_TYPES, STATIC_TYPES, check_layer_names

    for name in names:
        if graph.find(name) is None and loaded is not None and name in loaded:
            into = graph.find(loaded[name]) if loaded[name] else None
            where = (f"fused it into {into.name!r}: keep that one fp32" if into is not None
                     and into.type in STATIC_TYPES + DYNAMIC_TYPES else "removed it (it had nothing to quantize)")
            raise NcnncError(f"--fp32-layers names layer {name!r}, but the optimizer {where}", source)
    check_layer_names(graph, names, source)


def _load(model: Graph | str | Path | Sequence[str | Path]) -> tuple[Graph, str]:
    from ncnnc.core.frontend import load_model

    if isinstance(model, Graph):
        return model.copy(), model.name or "<graph>"
    paths = [str(model)] if isinstance(model, (str, Path)) else [str(p) for p in model]
    graph = load_model(paths)
    missing = graph.missing_weights()
    if missing:
        layer, name = missing[0]
        raise NcnncError(f"layer {layer.name} has no weight {name!r}: give the model's weights "
                         f"(MODEL.param MODEL.bin)", paths[0])
    return graph, paths[0]


@dataclass
class CalibrationImages:
    """A compile's calibration files and their preprocessing, one entry per model input (ncnn2table's
    ``LIST,LIST mean=[..],[..] shape=[w,h,c],[w]``); empty preprocessing lists take the defaults."""

    lists: list[Any]
    mean: list[list[float]]
    norm: list[list[float]]
    shape: list[list[int]]
    pixel: list[str]

    @classmethod
    def of(cls, graph: Graph, calib: Any, mean: Sequence[Any], norm: Sequence[Any], shape: Sequence[Any],
           pixel: str | Sequence[str]) -> CalibrationImages:
        """From the user's words: a single list and flat values for a one-input model, else one per input."""
        from ncnnc.core.calibration import per_input_lists, per_input_values

        return cls(per_input_lists(graph, calib), per_input_values(mean), per_input_values(norm),
                   [[int(v) for v in s] for s in per_input_values(shape)],
                   [pixel] if isinstance(pixel, str) else list(pixel))

    def specs(self, graph: Graph) -> list[Any]:
        """The checked :class:`~ncnnc.core.calibration.InputSpec` of each input."""
        from ncnnc.core.calibration import input_specs

        return input_specs(graph, self.lists, mean=self.mean, norm=self.norm, shape=self.shape, pixel=self.pixel)

    def sample(self, graph: Graph, count: int) -> dict[str, np.ndarray]:
        """Up to ``count`` calibration inputs spread evenly over the set, preprocessed, batched per input."""
        from ncnnc.core.calibration import load_batch

        specs = self.specs(graph)
        total = len(specs[0].paths)
        picks = sorted({int(i) for i in np.linspace(0, total - 1, min(count, total))})
        return load_batch(specs, picks)  # type: ignore[arg-type]

    def check_fits(self, graph: Graph) -> None:
        """A user error now, before any work: the checks of :meth:`specs` (lists, pixel types, mean/norm
        lengths), and an input's ``shape=`` that cannot feed the model's weights."""
        from ncnnc.core.input_check import PIXEL_CHANNELS, check_shape_fits

        specs = self.specs(graph)
        shapes = {}
        for spec, shape in zip(specs, self.shape):
            if len(shape) >= 2 and shape[0] > 0 and shape[1] > 0:
                w, h, *c = shape
                shapes[spec.blob] = (c[0] if c else PIXEL_CHANNELS.get(spec.pixel, 3), h, w)
        if len(shapes) == len(graph.inputs):  # (with an input left open, inference cannot judge the rest)
            check_shape_fits(graph.copy(), shapes, "shape=" + ",".join(
                f"[{','.join(map(str, s))}]" for s in self.shape))


def compile(model: Graph | str | Path | Sequence[str | Path], *, int8: bool = True,
            calib: str | Path | Sequence[Any] | None = None, mean: Sequence[Any] = (),
            norm: Sequence[Any] = (), shape: Sequence[Any] = (), pixel: str | Sequence[str] = "BGR",
            method: str = "kl",
            method_params: dict | None = None, fp32_layers: Iterable[str] | str = (),
            auto_mixed_precision: bool = False, target_cos: float = DEFAULT_TARGET_COS, amp_images: int = 16,
            amp_prune: bool = True, equalize: bool = False, bias_correction: bool = False, adaround: bool = False,
            act_scale: bool = False, winograd_bits: int | None = None, asymmetric: bool | None = None,
            equalize_activations: bool = False, exact_input: bool | None = None, quality: str = "default",
            refine_images: int = 100, refine_params: dict | None = None,
            threads: int = 1, executor: Any = None, scheduler: str | None = None,
            target: str | Target | None = None, emit_asm: bool = False, emit_llvm: bool = False,
            out_dir: str | Path | None = None, progress: bool = False,
            log: Callable[[str], None] | None = None, report_html: str | Path | None = None) -> CompileResult:
    """Compile a model (any frontend's files, or a graph) into an int8 ncnn model.

    ``calib`` (a list file, a directory, or image paths) and the preprocessing (``mean``, ``norm``,
    ``shape`` ``[w, h, c]``, ``pixel``) are ncnn2table's; for a model with several inputs each is given
    per input (``calib=["images.txt", "im_info.txt"]``, ``shape=[[600, 800, 3], [3]]``, ``pixel=["BGR",
    "RAW"]``).  ``method`` names a calibrator.
    ``fp32_layers`` (names, or one comma-separated string) stay fp32; ``auto_mixed_precision`` keeps the most
    sensitive layers fp32 until the worst calibration image's output cosine reaches ``target_cos`` (measured on
    ``amp_images`` images), then with ``amp_prune`` tries each chosen layer back in int8 and leaves it int8
    if the target still holds.  ``equalize`` (cross-layer equalization before calibration),
    ``act_scale`` (each layer's input scale searched for its smallest output error), ``bias_correction`` and
    ``adaround`` (refine steps after calibration, on ``refine_images`` calibration images, ``refine_params``
    their parameters) bring all-int8 closer to fp32.
    ``winograd_bits=8`` quantizes 3x3 stride-1 convolutions as finely as ncnn's int8 winograd computes exactly
    (up to 8 bits per channel) instead of ncnn2table's 6 bits (:mod:`ncnnc.core.winograd`); ``asymmetric``
    quantizes the inputs of layers that read ReLU outputs with 255 levels instead of 128
    (:mod:`ncnnc.core.asymmetric`); ``equalize_activations`` rescales channels between convolutions so each
    gets a similar share of its blob's int8 range, measured on the calibration images before calibrating
    (:mod:`ncnnc.core.activation_equalization`, fp32 identity); ``exact_input`` makes the int8 input of a
    convolution that reads the image the pixel itself (a ``Scale`` layer in front, :mod:`ncnnc.core.exact_input`,
    fp32 identity).  ``quality="high"`` turns on ``act_scale``,
    ``adaround``, ``winograd_bits=8``, ``asymmetric`` and ``exact_input`` (None: 6, False and False, or the
    preset's; activation equalization is not in the preset: docs/quantization.md).
    With ``out_dir`` the model is written as ``model.param``,
    ``model.bin`` and ``model.table`` there (all or none).  ``int8=False`` only optimizes.

    ``target`` (a target name such as ``armv8``, ``x86-64-v3``, ``host``, or a
    :class:`~ncnnc.core.backend.Target`) also generates native code with the LLVM backend:
    ``result.built``, and ``model.o`` + ``model.h`` (with ``emit_asm`` ``model.s``, with ``emit_llvm``
    ``model.ll``) written with the model, all or none.

    ``report_html`` (a path) also writes the quantization report (HTML with charts, needs ``ncnnc[report]``):
    activations, thresholds and per-layer cosine measured on the first ``REPORT_IMAGES`` calibration
    images with the numpy backend, and why layers stayed fp32.

    ``executor``/``scheduler`` say where calibration runs, as for :func:`ncnnc.calibrate` (a
    ``distributed.Client``, or ``"dask"`` and a scheduler address); the model is the same bytes.
    """
    from ncnnc.core.calibration import calibrate, per_input_values
    from ncnnc.core.evaluate import quantized_count_line
    from ncnnc.core.optimize import optimize
    from ncnnc.plugins.quantizer import check_fp32_model, quantize

    say = log or (lambda message: print(message, file=sys.stderr) if progress else None)
    fp32_layers = [n for n in fp32_layers.split(",") if n] if isinstance(fp32_layers, str) else list(fp32_layers)
    if auto_mixed_precision and amp_images < 1:
        raise NcnncError(f"--amp-images {amp_images}: need at least 1")
    if auto_mixed_precision and not 0 < target_cos <= 1:  # (a NaN fails too)
        raise NcnncError(f"--target-cos {target_cos}: expected a number in (0, 1]")
    equalize, refiners = _quality_methods(quality, equalize, bias_correction, adaround, act_scale)
    winograd_bits = winograd_bits if winograd_bits is not None else 8 if quality == "high" else 6
    asymmetric = asymmetric if asymmetric is not None else quality == "high"
    exact_input = exact_input if exact_input is not None else quality == "high"
    if not int8 and (equalize or refiners or equalize_activations or exact_input):
        raise NcnncError("equalization, bias correction and learned rounding apply only with int8")
    if refiners:
        from ncnnc.core.refine import resolve_params

        resolve_params(refiners, refine_params)  # unknown parameters fail before any work
        if refine_images < 1:
            raise NcnncError(f"--refine-images {refine_images}: need at least 1")
    if int8 and calib is None:
        raise NcnncError("--int8 needs calibration images (--calib LIST_OR_DIR)")
    if report_html is not None and not int8:
        raise NcnncError("--report describes quantization: it needs --int8")
    if int8:  # the method, its parameters and the images are checked before any work starts
        from ncnnc.core.calibration import find_calibrator, read_list

        find_calibrator(method).resolve(method_params)
        if isinstance(calib, (str, Path)):
            read_list(calib)
    resolved = None
    if target is not None:
        from ncnnc.backends.llvm.targets import resolve

        resolved = resolve(target)
    elif emit_asm or emit_llvm:
        flag = "--emit-asm" if emit_asm else "--emit-llvm"
        raise NcnncError(f"{flag} needs a code generation target (--target NAME)")
    if out_dir is not None:
        _check_out_dir(Path(out_dir))
    start = time.perf_counter()
    graph, source = _load(model)
    check_fp32_model(graph, source)
    if report_html is not None and len(graph.inputs) != 1:
        raise NcnncError(f"--report compares outputs image by image: it takes one-input models (this one has "
                         f"{len(graph.inputs)}: {', '.join(graph.inputs)})")
    images = CalibrationImages.of(graph, calib, mean, norm, shape, pixel) if int8 else None
    if images is not None:  # the calibration images' shapes must fit the weights: say so now
        images.check_fits(graph)
    _check_fp32_layers(graph, fp32_layers, source)
    producers = graph.producers()
    loaded_names = {layer.name: producers[layer.inputs[0]].name if layer.inputs and layer.inputs[0] in producers
                    else None for layer in graph.layers}
    result = CompileResult(graph, None, fp32_bytes=_fp32_size(graph))
    result.stages["load"] = time.perf_counter() - start
    result.notes["load"] = f"{source}: {len(graph)} layers"

    t = time.perf_counter()
    say("optimizing ...")
    opt = optimize(graph)
    result.stages["optimize"] = time.perf_counter() - t
    result.notes["optimize"] = (f"layers {opt.layers_before} -> {opt.layers_after} "
                                f"({opt.layers_before - opt.layers_after} fused or removed)")
    _check_fp32_layers(graph, fp32_layers, source, loaded_names)
    out_graph, table = graph, None
    if equalize:
        _equalize(graph, result)
    if int8:
        if equalize_activations:
            _equalize_activations(graph, images, result)
        t = time.perf_counter()
        say(f"calibrating ({method}) ...")
        cal = calibrate(graph, lists=images.lists, method=method, method_params=method_params, mean=images.mean,
                        norm=images.norm, shape=images.shape, pixel=images.pixel, threads=threads, executor=executor,
                        scheduler=scheduler, progress=progress, winograd_bits=winograd_bits)
        table = CalibrationTable.parse(cal.table.to_text())  # the scales as model.table holds them (%f)
        result.stages["calibrate"] = time.perf_counter() - t
        result.notes["calibrate"] = cal.summary()
        calibrated = {}  # the exact-input layers' own table entries, for model.table
        if exact_input:
            calibrated = _exact_input(graph, table, images, method, winograd_bits, fp32_layers, result)
        reasons: dict[str, str] = {}
        if auto_mixed_precision:  # before refining: the refine steps then tune the int8 layers around the fp32 ones
            t = time.perf_counter()
            reasons = _mixed_precision(graph, table, images, target_cos, amp_images, fp32_layers, progress, result,
                                       amp_prune, asymmetric)
            result.stages["mixed precision"] = time.perf_counter() - t
        if refiners:
            say("refining ...")
            _refine(graph, table, refiners, refine_params, images, refine_images, [*fp32_layers, *reasons], progress,
                    result, winograd_bits, asymmetric)
        t = time.perf_counter()
        quantized = quantize(graph, table, fp32_layers=fp32_layers, fp32_reasons=reasons, model_path=source,
                             asymmetric=asymmetric)
        out_graph = quantized.graph
        table = _comment_out(table, list(quantized.report.kept_fp32))
        for name, (weight_scales, input_scale) in calibrated.items():
            table.weight_scales[name], table.input_scales[name] = weight_scales, input_scale
        result.quantize_report = quantized.report
        result.stages["quantize"] = time.perf_counter() - t
        report = quantized.report
        result.notes["quantize"] = (quantized_count_line(len(report.quantized), len(report.dynamic),
                                                         len(report.kept_fp32))
                                    + f" (requantize fusion on {len(report.requantized)}"
                                    + (f", asymmetric inputs on {len(report.asymmetric)})" if asymmetric else ")")
                                    + "".join(f"\n{'':28}fp32 {n}: {why}" for n, why in report.kept_fp32.items()))
    else:
        from ncnnc.backends.ncnn_writer import convert_storage

        convert_storage(out_graph, "fp16")
    result.graph, result.table = out_graph, table
    from ncnnc.backends.ncnn_writer import bin_bytes, param_text

    data = bin_bytes(out_graph)
    result.out_bytes = len(data)
    extra: dict[str, bytes] = {}
    if resolved is not None:
        t = time.perf_counter()
        say(f"generating code for {resolved.name} ...")
        extra = _codegen(out_graph, resolved, images.shape if images else per_input_values(shape), emit_asm,
                         emit_llvm, result)
        result.stages["codegen"] = time.perf_counter() - t
    if out_dir is not None:
        result.written = _write(Path(out_dir), param_text(out_graph), data, table, extra)
    if report_html is not None:
        t = time.perf_counter()
        say("writing the report ...")
        result.written.append(_report(graph, result, images, method, threads, report_html))
        result.stages["report"] = time.perf_counter() - t
    result.stages["total"] = time.perf_counter() - start
    return result


QUALITIES = ("default", "high")
"""``quality`` presets: ``high`` turns on the activation-scale search, learned rounding, 8-bit winograd
weights, asymmetric inputs and exact image inputs (not equalization, which measured worse with ncnn's
per-channel weight scales, nor bias correction, which measured no better on top, nor activation equalization:
docs/quantization.md)."""


def _quality_methods(quality: str, equalize: bool, bias_correction: bool, adaround: bool,
                     act_scale: bool = False) -> tuple[bool, list]:
    """Whether to equalize, and the refiners to run (in their order), from the flags and the preset."""
    from ncnnc.core.refine import find_refiner

    if quality not in QUALITIES:
        raise NcnncError(f"unknown quality {quality!r} (one of {', '.join(QUALITIES)})")
    if quality == "high":
        act_scale = adaround = True
    names = [name for name, on in (("act-scale", act_scale), ("adaround", adaround),
                                   ("bias-correction", bias_correction)) if on]
    return equalize, [find_refiner(name) for name in names]


def _equalize(graph: Graph, result: CompileResult) -> None:
    """Run the ``equalize`` pass until it settles; note what it did."""
    from ncnnc.core.optimize import registered_passes
    from ncnnc.core.passes import PassManager

    t = time.perf_counter()
    report = PassManager([p for p in registered_passes() if p.name == "equalize"], only=["equalize"]).run(graph)
    result.stages["equalize"] = time.perf_counter() - t
    layers = {change.split(" -> ")[0] for _, change in report.changes}
    result.notes["equalize"] = f"{len(layers)} layer(s) equalized with their consumers in {report.rounds} round(s)"


def _exact_input(graph: Graph, table: CalibrationTable, images: CalibrationImages, method: str, winograd_bits: int,
                 fp32_layers: list[str], result: CompileResult) -> dict[str, tuple[np.ndarray, float]]:
    """The convolutions that read an 8-bit image get it exactly (:mod:`ncnnc.core.exact_input`), but those
    asked to stay fp32 (or commented out in the table).  Returns their
    calibrated ``(weight scales, input scale)``: ``model.table`` keeps those, which fit the model as loaded
    (the rewritten layer's scales fit only the rewritten one)."""
    from ncnnc.core.calibration import find_calibrator, weight_scales
    from ncnnc.core.exact_input import exact_input_layers, make_input_exact
    from ncnnc.core.winograd import as_written

    t = time.perf_counter()
    specs = {spec.blob: spec for spec in images.specs(graph) if spec.images and spec.pixel != "RAW"}
    rule = find_calibrator(method).weights
    changed: dict[str, tuple[np.ndarray, float]] = {}
    for conv in exact_input_layers(graph, table, list(specs), fp32_layers):
        spec = specs[conv.inputs[0]]
        changed[conv.name] = (table.weight_scales[conv.name], table.input_scales[conv.name])
        make_input_exact(graph, table, conv, spec.mean, spec.norm,
                         lambda layer: as_written(weight_scales(layer, rule, winograd_bits)))
    result.stages["exact input"] = time.perf_counter() - t
    result.notes["exact input"] = (f"int8 input = pixel - 128 for {', '.join(changed)} (a Scale layer in front)"
                                   if changed else "no int8 convolution reads an 8-bit image directly")
    return changed


def _equalize_activations(graph: Graph, images: CalibrationImages, result: CompileResult) -> None:
    """Activation equalization on a sample of the calibration images; note what it did."""
    from ncnnc.core.activation_equalization import IMAGES, equalize_activations

    t = time.perf_counter()
    changes = equalize_activations(graph, images.sample(graph, IMAGES))
    result.stages["equalize activations"] = time.perf_counter() - t
    result.notes["equalize activations"] = f"{len(changes)} producer(s) rescaled for their readers" + (
        f"; e.g. {changes[-1]}" if changes else "")


def _refine(graph, table, refiners, refine_params, images: CalibrationImages, refine_images, fp32_layers,
            progress, result, winograd_bits: int = 6, asymmetric: bool = False) -> None:
    """The refine walk: each refiner's own time as a stage, the walk's forward passes as ``refine walk``."""
    from tqdm import tqdm

    from ncnnc.core.refine import refine_graph

    t = time.perf_counter()
    inputs = images.sample(graph, refine_images)
    load_seconds = time.perf_counter() - t
    total = sum(1 for name in table.input_scales if name not in table.commented and name not in fp32_layers)
    with tqdm(total=total, desc="refine", unit="layer", file=sys.stderr, disable=not progress, leave=False) as bar:
        def tick(name: str) -> None:
            bar.set_postfix_str(name[-40:])
            bar.update(1)

        report = refine_graph(graph, table, inputs, refiners, refine_params, fp32_layers=fp32_layers, progress=tick,
                              winograd_bits=winograd_bits, asymmetric=asymmetric)
    for r in refiners:
        result.stages[r.name.replace("-", " ")] = report.seconds[r.name]
        notes = [n for layer_notes in report.notes.values() for n in layer_notes if n.startswith(r.name)]
        result.notes[r.name.replace("-", " ")] = f"{report.layers} layers on {report.images} images" + (
            f"; e.g. {notes[-1].split(': ', 1)[1]}" if notes else "")
    result.stages["refine walk"] = report.seconds["walk"] + load_seconds
    result.notes["refine walk"] = "fp32 and int8 forward passes shared by the refine steps"


def _report(fp32: Graph, result: CompileResult, images: CalibrationImages, method: str, threads: int,
            path: str | Path) -> Path:
    """The quantization report of a compile, on the first ``REPORT_IMAGES`` calibration images."""
    from ncnnc.core.evaluate import evaluate
    from ncnnc.core.report import quantization_report
    from ncnnc.core.report_html import write_html

    specs = images.specs(fp32)
    spec = specs[0]  # one input (compile checks)
    evaluation = evaluate(fp32, result.graph, images.lists[0], mean=list(spec.mean), norm=list(spec.norm),
                          shape=images.shape[0] if images.shape else [], pixel=spec.pixel, backend="numpy",
                          limit=REPORT_IMAGES)
    reasons = result.quantize_report.kept_fp32 if result.quantize_report else {}
    data = quantization_report(fp32, result.graph, specs, evaluation,
                               title=f"ncnnc compile report: {result.notes['load']}",
                               fp32_bytes=result.fp32_bytes, int8_bytes=result.out_bytes, method=method,
                               reasons=reasons, threads=threads, limit=REPORT_IMAGES)
    return write_html(data, path)


def _mixed_precision(graph, table, images: CalibrationImages, target_cos, amp_images, fp32_layers, progress,
                     result, prune: bool = True, asymmetric: bool = False) -> dict[str, str]:
    from tqdm import tqdm

    from ncnnc.core.mixed_precision import AMP_CANDIDATES, choose_fp32_layers, hardest_images

    inputs = images.sample(graph, amp_images * AMP_CANDIDATES)
    inputs = hardest_images(graph, table, inputs, amp_images, fp32_layers=fp32_layers, asymmetric=asymmetric)
    with tqdm(desc="mixed precision", unit="run", file=sys.stderr, disable=not progress, leave=False) as bar:
        def tick(message: str) -> None:
            bar.set_postfix_str(message[-60:])
            bar.update(1)

        amp = choose_fp32_layers(graph, table, inputs, target_cos=target_cos, fp32_layers=fp32_layers,
                                 prune=prune, asymmetric=asymmetric, progress=tick)
    result.mixed_precision = amp
    result.notes["mixed precision"] = (f"{len(amp.sensitivity)} layers measured on {len(next(iter(inputs.values())))} "
                                       f"images; worst output cosine {amp.int8_cosine:.5f} -> {amp.final_cosine:.5f}, "
                                       f"{len(amp.fp32_layers)} kept fp32 (target {target_cos})")
    return amp.fp32_layers


def _codegen_shapes(graph: Graph, shapes: Sequence[Sequence[int]]) -> dict[str, tuple[int, ...]] | None:
    """Input shapes for code generation: ``shape=[w,h,c]`` (one per input) for the inputs whose Input layer
    has no dims."""
    found = {}
    for blob, shape in zip(graph.inputs, shapes):
        layer = graph.producer(blob)
        if len(shape) not in (2, 3) or layer is None or (layer.p("w") and layer.p("h")):
            continue
        w, h, *c = (int(v) for v in shape)
        found[blob] = (c[0] if c else 3, h, w)
    return found or None


def _codegen(graph: Graph, target: Target, shapes: Sequence[Sequence[int]], emit_asm: bool, emit_llvm: bool,
             result: CompileResult) -> dict[str, bytes]:
    """Build ``graph`` for ``target`` with the LLVM backend; note the outcome; returns the AOT files."""
    from ncnnc.backends.llvm.aot import aot_files
    from ncnnc.backends.llvm.build import build

    built = build(graph, target, input_shapes=_codegen_shapes(graph, shapes), assembly=emit_asm, llvm_ir=emit_llvm)
    result.built = built
    result.notes["codegen"] = (f"{built.target} ({built.triple}): {len(built.steps)} kernels, workspace "
                               f"{built.workspace_size} bytes, object {len(built.object_code)} bytes, "
                               + ("from cache" if built.cached else "compiled (not cached)"))
    return aot_files(built)


def _check_out_dir(out_dir: Path) -> None:
    """A user error before any work when ``out_dir`` cannot become the output directory: a file is in the way
    (there or above it), or the nearest existing folder above it is not writable.  Nothing is created."""
    import os

    for place in (out_dir, *out_dir.absolute().parents):
        if place.exists():
            if not place.is_dir():
                raise NcnncError("exists and is not a directory" if place == out_dir else
                                 f"cannot create the output directory: {place} is not a directory", str(out_dir))
            if place != out_dir and not os.access(place, os.W_OK | os.X_OK):
                raise NcnncError(f"cannot create the output directory: {place} is not writable", str(out_dir))
            return


def _write(out_dir: Path, param: str, data: bytes, table: CalibrationTable | None,
           extra: dict[str, bytes] | None = None) -> list[Path]:
    """Write the model (and ``extra`` files such as ``model.o``) into ``out_dir``, all or none.

    Generated code left there by an earlier compile that this one does not produce (``model.o`` after a
    compile without a target, ``model.s`` without ``--emit-asm``) is removed: it would not match the model.
    """
    from ncnnc.backends.llvm.aot import AOT_NAMES
    from ncnnc.core.fileio import atomic_outputs

    extra = extra or {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NcnncError(f"cannot create the output directory: {e.strerror}", str(out_dir)) from None
    paths = [out_dir / name for name in OUTPUT_NAMES[: 3 if table is not None else 2]]
    paths += [out_dir / name for name in extra]
    with atomic_outputs(*paths) as temps:
        temps[0].write_text(param)
        temps[1].write_bytes(data)
        if table is not None:
            temps[2].write_text(table.to_text())
        for tmp, content in zip(temps[len(paths) - len(extra):], extra.values()):
            tmp.write_bytes(content)
    for name in AOT_NAMES:
        if name not in extra:
            (out_dir / name).unlink(missing_ok=True)
    return paths
