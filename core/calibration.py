"""Calibration: activation statistics per blob -> int8 scales, in ncnn2table's table format.

The contract (what a calibrator plugin provides, see ``docs/calibrators.md``):

- a :class:`Calibrator` observes activation batches of ONE blob (``observe``), keeps statistics
  that merge exactly (``merge``: the statistics of two shards merged give the same table as one
  pass over both), and turns them into a clipping threshold (``threshold``) and so a scale
  ``127 / threshold``; a multi-pass calibrator may say what later passes need of a batch
  (``replay_form``, e.g. only the nonzero ``|x|``), which is what the driver keeps between passes;
- a :class:`CalibratorFactory` names the method, describes its parameters and creates one
  calibrator per blob.  Plugins return factories from the ``ncnnc_calibrators`` hook.  A factory
  may also ``refine`` the finished table with the model at hand (``eq`` does).

The driver (:func:`calibrate`) runs the numpy reference backend over the images in fixed batches,
feeds each quantized layer's input blob to its calibrator, computes the weight scales, and writes
the table.  With ``threads=N`` the batches are split into N contiguous shards run by N processes
and their statistics merged in order, so the table does not depend on N.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncnnc.core.errors import NcnncError
from ncnnc.core.executors import Executor, Job, LocalExecutor, Session, Worker, make_executor, split
from ncnnc.core.input_check import check_mean_norm
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.preprocess import PIXEL_TYPES
from ncnnc.core.table import CalibrationTable
from ncnnc.core.winograd import INT6_MAX, check_winograd_bits, is_winograd_conv, winograd_scales

MAX_THREADS = 256
"""Most worker processes a calibration starts (``thread=``): each is a process, not a light thread."""

QUANTIZED_TYPES = ("Convolution", "ConvolutionDepthWise", "InnerProduct")

DEFAULT_THREADS = os.cpu_count() or 1
"""The command line's default ``thread=``: every core, as ncnn2table (the table does not depend on it)."""
"""Layer types whose input blob and weights get scales (as in ncnn2table)."""

INT8_MAX = 127

FALLBACK_SCALE = 1.0
"""Scale of an all-zero weight channel or an all-zero blob: any finite value is exact there."""


# -- the contract ----------------------------------------------------------------------------
DEFAULT_BATCH = 4
"""Images per batch (``batch=``): a batch's activations stay in cache better than 8's (``ncnnc table``
kl, SqueezeNet, 100 images, ``thread=2``: 1.49 s against 1.71 s, mean of 5), and the shards of a few
processes come out more even.  Batches never change the table: images are computed one by one and
every merge is exact."""


class Calibrator(ABC):
    """Statistics of one blob's activations, and the threshold they give.

    The driver shows the calibrator every batch of its blob, ``passes`` times over (ncnn2table's
    KL needs the absmax before it can histogram).  Between passes it merges the shards and calls
    ``next_pass`` on the merged calibrator, which every shard then continues from.

    The contract (``CALIBRATOR_API``): a subclass implements ``observe``, ``merge`` and
    ``threshold``; it may set ``passes`` (an int) and implement ``next_pass`` and ``replay_form``,
    and may keep ``absmax`` (a number, shown in summaries).  Those are the only names the driver
    uses, so they must not be replaced by something else (``self.threshold = 3.0``); every other
    attribute name is the subclass's own (``self.scale = ...`` is fine: the driver computes the
    scale itself from ``threshold()``).  :meth:`CalibratorFactory.make` checks this.

    Subclasses must be picklable (statistics travel between processes), and ``merge`` must be
    exact: observing A then B, or A and B apart then merging, gives the same ``threshold``.
    ``merge`` combines statistics of the current pass; what earlier passes left is the same in
    every shard and must be kept, not added up.
    """

    passes: int = 1

    @abstractmethod
    def observe(self, batch: np.ndarray) -> None:
        """Take a batch of activations of the blob (leading axis N; any dtype castable to float32)."""

    @abstractmethod
    def merge(self, other: Calibrator) -> None:
        """Add the statistics of ``other`` (same method and parameters, disjoint images) to these."""

    @abstractmethod
    def threshold(self) -> float:
        """The clipping threshold T (|x| above T saturates); 0 if nothing nonzero was seen."""

    def next_pass(self) -> None:  # noqa: B027 (optional hook, nothing to do for one pass)
        """Prepare the next pass over the data (called on the merged statistics)."""

    def observe_all(self, batches: Sequence[np.ndarray]) -> Calibrator:
        """Show in-memory batches to this calibrator for every one of its passes, as the driver does
        in one process; returns ``self`` (handy for testing a calibrator on synthetic data)."""
        for i in range(self.passes):
            if i:
                self.next_pass()
            for batch in batches:
                self.observe(batch)
        return self

    def replay_form(self, batch: np.ndarray) -> np.ndarray:
        """What later passes need of a batch seen in the first one (default: the batch itself).

        The driver keeps this between passes (within its cache budget) and shows it to
        ``observe`` in later passes instead of running the model again.  A calibrator whose later
        passes depend on less (for example only the nonzero ``|x|``, in any order) may return a
        smaller array; it must accept that array in ``observe`` then.
        """
        return batch

    absmax: float | None = None
    """The largest |x| seen, when the calibrator tracks it (shown in summaries): a number, an
    attribute or a property of the subclass."""

    def scale(self) -> float:
        """The int8 scale ``127 / threshold`` in float32 (a convenience: the driver does not call it)."""
        return activation_scale(self.threshold())


CALIBRATOR_API = ("observe", "merge", "threshold", "next_pass", "replay_form")
"""The methods the driver calls on a calibrator (besides reading ``passes`` and ``absmax``)."""


def check_calibrator(cal: object, method: str) -> None:
    """A user error naming the method when its calibrator breaks the contract (see :class:`Calibrator`)."""
    where = f"calibration method {method}"
    if not isinstance(cal, Calibrator):
        raise NcnncError(f"{where}: create() returned a {type(cal).__name__}, not a Calibrator subclass")
    for name in CALIBRATOR_API:
        if not callable(getattr(cal, name, None)):
            raise NcnncError(f"{where}: {type(cal).__name__}.{name} is {getattr(cal, name, None)!r}, "
                             f"but the driver calls {name}() (docs/calibrators.md: the contract)")
    passes = getattr(cal, "passes", None)
    if not isinstance(passes, int) or isinstance(passes, bool) or passes < 1:
        raise NcnncError(f"{where}: {type(cal).__name__}.passes is {passes!r}, expected a whole number >= 1")


def reported_absmax(cal: Calibrator) -> float | None:
    """A calibrator's ``absmax`` as a float, or None when it keeps none (or keeps something else there)."""
    value = getattr(cal, "absmax", None)
    return float(value) if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class CalibratorParam:
    """One parameter of a calibration method: its name, default (which fixes its type) and help."""

    name: str
    default: float | int | str
    help: str = ""

    def parse(self, value: Any) -> float | int | str:
        """Convert a user value (string or number) to the parameter's type."""
        kind = type(self.default)
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise NcnncError(f"parameter {self.name}={value!r} is not a valid {kind.__name__}") from None


@dataclass(frozen=True)
class CalibratorFactory:
    """A calibration method as a plugin registers it.

    ``create(**params)`` returns a fresh :class:`Calibrator` for one blob, given the values of
    ``params``.  ``weights`` chooses the weight-scale rule: ``"absmax"`` (127/absmax per output
    channel) or ``"aciq"`` (ncnn2table's ACIQ clip).  ``refine(context)``, if given, adjusts the
    finished table with the model at hand; it reads ``refine_params`` from ``context.params``.
    """

    name: str
    description: str
    create: Callable[..., Calibrator]
    params: tuple[CalibratorParam, ...] = ()
    weights: str = "absmax"
    refine: Callable[[RefineContext], None] | None = None
    refine_params: tuple[CalibratorParam, ...] = ()

    def resolve(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overridden by ``values``; unknown names are a user error listing the known ones."""
        known = {p.name: p for p in (*self.params, *self.refine_params)}
        out = {name: p.default for name, p in known.items()}
        for key, value in (values or {}).items():
            if key not in known:
                choices = ", ".join(known) or "none"
                raise NcnncError(f"method {self.name} has no parameter {key!r} (parameters: {choices})")
            out[key] = known[key].parse(value)
        if values:
            self._create(out)  # a value the method's constructor refuses is an error before any work
        return out

    def _create(self, resolved: Mapping[str, Any]) -> Calibrator:
        """The calibrator; a value its constructor refuses (``ValueError``) is a user error naming the method."""
        try:
            return self.create(**{p.name: resolved[p.name] for p in self.params})
        except ValueError as e:
            given = ", ".join(f"{p.name}={resolved[p.name]}" for p in self.params)
            raise NcnncError(f"method {self.name} ({given}): {e}") from None

    def make(self, values: Mapping[str, Any] | None = None) -> Calibrator:
        """A calibrator for one blob, with ``values`` (resolved or not) for ``params``."""
        resolved = self.resolve(values)
        cal = self._create(resolved)
        check_calibrator(cal, self.name)
        return cal


def activation_scale(threshold: float) -> float:
    """``127 / threshold`` in float32 as ncnn2table computes it; 1.0 when that is not finite/positive."""
    if not threshold > 0:
        return FALLBACK_SCALE
    with np.errstate(over="ignore"):
        scale = float(np.float32(INT8_MAX) / np.float32(threshold))
    return scale if math.isfinite(scale) and scale > 0 else FALLBACK_SCALE


def find_calibrator(name: str) -> CalibratorFactory:
    """The registered calibration method called ``name`` (a user error listing the choices)."""
    from ncnnc.core.registry import registry

    return registry().get("calibrators", name)


# -- which blobs and weights get scales ---------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A quantized layer: its table name, its input blob, and the blob whose statistics stand for it.

    ``source`` follows ``Split`` layers back to the blob they copy, so the copies share one
    calibrator (their values are identical).
    """

    layer: Layer
    blob: str
    source: str

    @property
    def name(self) -> str:
        """The layer name, as both of its table lines start."""
        return self.layer.name


def quant_targets(graph: Graph) -> list[Target]:
    """Every layer that ncnn2table gives scales, in model order: Convolution, ConvolutionDepthWise,
    InnerProduct with stored fp32/fp16 weights (not ``dynamic_weight``, not already int8)."""
    producers = graph.producers()
    targets = []
    for layer in graph.layers:
        if layer.type not in QUANTIZED_TYPES or "weight" not in layer.weights:
            continue
        if layer.weights["weight"].storage == "int8" or layer.p("int8_scale_term"):
            raise NcnncError("this model is already int8; calibrate the fp32 model", where=f"layer {layer.name}")
        source = layer.inputs[0]
        while (p := producers.get(source)) is not None and p.type == "Split":
            source = p.inputs[0]
        targets.append(Target(layer, layer.inputs[0], source))
    return targets


def weight_rows(layer: Layer) -> np.ndarray:
    """The weights as rows that share a scale: one per output channel, one per group for depthwise."""
    w = layer.weight("weight")
    rows = layer.p("group") if layer.type == "ConvolutionDepthWise" else layer.p("num_output")
    return w.reshape(int(rows), -1)


def weight_bits_max(layer: Layer, winograd_bits: int = 6) -> int:
    """The largest int8 weight magnitude: 127, or 31 for a winograd convolution with ``winograd_bits=6``
    (ncnn2table's rule; with 8 its channels are bounded by a sum instead, :mod:`ncnnc.core.winograd`)."""
    return INT6_MAX if winograd_bits == 6 and is_winograd_conv(layer) else INT8_MAX


ALPHA_GAUSSIAN = (0.0, 1.71063519, 2.15159277, 2.55913646, 2.93620062, 3.28691474, 3.6151146, 3.92403714)
"""ACIQ's optimal clip of a Gaussian in units of its sigma, for 1 ... 8 bits (as in ncnn2table)."""

_GAUSSIAN_CONST = (0.5 * 0.35) * (1 + math.sqrt(math.pi * math.log(4)))


def aciq_gaussian_clip(absmax: float, n: int, bits: int = 8) -> float:
    """ncnn2table's ACIQ threshold: sigma estimated from the absmax of ``n`` samples, times alpha.

    ``sigma = absmax * 2 * c / sqrt(2 ln n)`` with ``c = 0.175 (1 + sqrt(pi ln 4))``; computed in
    double and returned as float32 like ncnn.  ``n < 2`` gives ``absmax`` (the estimate needs n > 1).
    """
    if n < 2:
        return float(np.float32(absmax))
    sigma = (float(np.float32(absmax)) * 2 * _GAUSSIAN_CONST) / math.sqrt(2 * math.log(n))
    return float(np.float32(float(np.float32(ALPHA_GAUSSIAN[bits - 1])) * sigma))


def weight_scales(layer: Layer, rule: str = "absmax", winograd_bits: int = 6) -> np.ndarray:
    """ncnn2table's weight scales of a layer, float32, one per output channel (group for depthwise).

    ``absmax``: ``127 / absmax`` (``31 / absmax`` for 6-bit winograd convolutions); ``aciq``: the same
    over the ACIQ clip of each row.  An all-zero row gets 1.0 (ncnn would write inf).  With
    ``winograd_bits=8`` a winograd convolution's channels get the largest scale ncnn's int8 winograd
    computes exactly (:func:`~ncnnc.core.winograd.winograd_scales`) instead of 6 bits.
    """
    check_winograd_bits(winograd_bits)
    rows = weight_rows(layer)
    absmax = np.abs(rows).max(axis=1).astype(np.float32) if rows.size else np.zeros(len(rows), np.float32)
    qmax = weight_bits_max(layer, winograd_bits)
    if rule == "aciq":
        bits = 6 if qmax == INT6_MAX else 8
        clip = np.array([aciq_gaussian_clip(a, rows.shape[1], bits) for a in absmax], dtype=np.float32)
    elif rule == "absmax":
        clip = absmax
    else:
        raise ValueError(f"unknown weight scale rule {rule!r}")
    if winograd_bits == 8 and is_winograd_conv(layer):
        return winograd_scales(rows, clip)
    with np.errstate(divide="ignore", over="ignore"):
        scales = np.float32(qmax) / clip
    return np.where((clip > 0) & np.isfinite(scales), scales, np.float32(FALLBACK_SCALE)).astype(np.float32)


# -- inputs: lists, preprocessing --------------------------------------------------------------
@dataclass
class InputSpec:
    """One model input: its blob, its files, and how to turn a file into a tensor.

    ``shape`` is ncnn2table's ``[w, h(, c)]`` (for ``.npy`` files the array's reversed shape);
    ``mean``/``norm`` as ``substract_mean_normalize``; ``pixel`` the image's channel order
    (``RAW``: the decoded image as is); ``npy`` for ``type=1``.
    """

    blob: str
    paths: list[Path]
    shape: tuple[int, ...] = ()
    mean: tuple[float, ...] = ()
    norm: tuple[float, ...] = ()
    pixel: str = "BGR"
    npy: bool = False
    source: str = ""

    @property
    def images(self) -> bool:
        """Whether the files are images (``type=1`` or a list of ``.npy`` files holds tensors, such as an
        R-CNN's ``im_info``)."""
        return not self.npy and self.paths[0].suffix.lower() != ".npy"

    def load(self, index: int) -> np.ndarray:
        """The preprocessed tensor of file ``index`` in ncnn layout ``(c, h, w)``, float32."""
        path = self.paths[index]
        if self.npy or path.suffix.lower() == ".npy":  # a .npy in an image list: a tensor input (im_info)
            return load_npy(path, self.shape if self.npy else ())
        from ncnnc.core.preprocess import load_image, substract_mean_normalize

        try:
            x = load_image(path, pixel=self.pixel, shape=tuple(self.shape))
            x = substract_mean_normalize(x, list(self.mean) or None, list(self.norm) or None)
        except NcnncError as e:
            raise NcnncError(e.message, e.path or str(path), e.where) from None
        return np.asarray(x, dtype=np.float32)


def load_npy(path: Path, shape: Sequence[int]) -> np.ndarray:
    """A ``.npy`` input as ncnn2table reads it: float32, shape given as ``[w, h, ...]`` must match."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise NcnncError(f"cannot read .npy: {e}", str(path)) from None
    want = tuple(reversed(tuple(shape)))
    if shape and a.shape != want:
        raise NcnncError(f"array shape {list(a.shape)} does not match shape={list(shape)} "
                         f"(expected {list(want)})", str(path))
    return np.ascontiguousarray(a, dtype=np.float32)


def read_list(path: str | Path) -> list[Path]:
    """The files of a list: one path per line (first word, as ncnn2table), or a directory's files.

    Relative paths are taken from the working directory, else from the list file's directory.
    A missing list, a missing file or an empty list is a user error naming the list and line.
    """
    path = Path(path)
    if path.is_dir():
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        files = [p for p in entries if p.is_file()]
        if not files:
            folders = [p.name for p in entries if p.is_dir()]
            inside = f" (only folders, which are not searched: {', '.join(folders[:3])}" \
                     f"{', ...' if len(folders) > 3 else ''}; give one of them)" if folders else ""
            raise NcnncError(f"the directory has no files{inside}", str(path))
        return files
    from ncnnc.core.fileio import read_input

    text = read_input(path, "list").decode(errors="replace")
    files = []
    for lineno, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        try:
            f = Path(words[0])
            if not f.is_absolute() and not f.exists() and (path.parent / f).exists():
                f = path.parent / f
            found = f.is_file()
        except OSError as e:
            raise NcnncError(f"bad file name {words[0][:60]!r}: {e.strerror}", str(path), f"line {lineno}") from None
        if not found:
            raise NcnncError(f"no such file {words[0][:200]!r}", str(path), f"line {lineno}")
        files.append(f)
    if not files:
        raise NcnncError("the list has no files (zero images)", str(path))
    return files


def input_specs(graph: Graph, lists: Sequence[str | Path | Sequence[str | Path]], *,
                mean: Sequence[Sequence[float]] = (), norm: Sequence[Sequence[float]] = (),
                shape: Sequence[Sequence[int]] = (), pixel: Sequence[str] = (),
                npy: bool = False) -> list[InputSpec]:
    """One :class:`InputSpec` per model input, checked as ncnn2table checks them (and more).

    ``lists[i]`` is a list file, a directory, or a sequence of paths; per-input settings may be
    left empty (no mean/norm, BGR, the Input layer's own shape).
    """
    blobs = [layer.outputs[0] for layer in graph.layers if layer.type == "Input"]
    if len(lists) != len(blobs):
        raise NcnncError(f"the model has {len(blobs)} input(s) ({', '.join(blobs)}), got {len(lists)} list(s)")
    for key, values in (("mean", mean), ("norm", norm), ("shape", shape), ("pixel", pixel)):
        if values and len(values) != len(blobs):
            raise NcnncError(f"the model has {len(blobs)} input(s), {key}= gives {len(values)}")
    specs = []
    for i, (blob, lst) in enumerate(zip(blobs, lists)):
        if isinstance(lst, (str, Path)):
            paths, source = read_list(lst), str(lst)
        else:
            paths, source = [Path(p) for p in lst], "<paths>"
            if not paths:
                raise NcnncError(f"no files for input {blob!r} (zero images)")
        px = (pixel[i] if pixel else "BGR").upper()
        if px not in PIXEL_TYPES:
            raise NcnncError(f"unknown pixel type {px!r} (one of {', '.join(PIXEL_TYPES)})")
        if shape and not npy and paths[0].suffix.lower() != ".npy" and len(shape[i]) not in (2, 3):
            # images (a list of .npy tensors, such as an R-CNN's im_info, may take shape=[3])
            raise NcnncError(f"shape={list(shape[i])} for input {blob!r}: an image input needs [w,h] or [w,h,c]")
        shp = tuple(int(v) for v in shape[i]) if shape else _input_layer_shape(graph, blob)
        check_mean_norm(mean[i] if mean else None, norm[i] if norm else None, px, npy,
                        shape[i] if shape and px != "RAW" else None)
        specs.append(InputSpec(blob, paths, shp, tuple(mean[i]) if mean else (),
                               tuple(norm[i]) if norm else (), px, npy, source))
    counts = {len(s.paths) for s in specs}
    if len(counts) > 1:
        detail = ", ".join(f"{s.source}: {len(s.paths)}" for s in specs)
        raise NcnncError(f"the lists have different numbers of files ({detail})")
    return specs


def _input_layer_shape(graph: Graph, blob: str) -> tuple[int, ...]:
    layer = graph.producer(blob)
    w, h, c = layer.p("w"), layer.p("h"), layer.p("c")
    if not (w and h):
        raise NcnncError(f"give shape= for input {blob!r} (its Input layer has no size)")
    return (w, h, c) if c else (w, h)


def check_shapes(graph: Graph, specs: Sequence[InputSpec]) -> None:
    """Raise a user error if the first file of each input does not fit the model."""
    from ncnnc.core.shapes import infer_shapes

    given = {s.blob: s.load(0).shape for s in specs}
    what = ", ".join(f"{s.blob} {list(given[s.blob])}" for s in specs)
    try:
        shapes = infer_shapes(graph, given)
    except NcnncError as e:
        raise NcnncError(f"input shape {what} does not fit the model: {e}") from None
    for layer in graph.layers:
        bad = [b for b in layer.outputs if any(d <= 0 for d in shapes.get(b, (1,)))]
        if bad or (layer.type in QUANTIZED_TYPES and not _weights_fit(layer, shapes[layer.inputs[0]])):
            got = list(shapes[layer.inputs[0]]) if layer.inputs else []
            raise NcnncError(f"input shape {what} does not fit the model (layer input {got})",
                             where=f"layer {layer.name}")


def _weights_fit(layer: Layer, shape: tuple[int, ...]) -> bool:
    if "weight" not in layer.weights:
        return True
    size = layer.p("weight_data_size")
    if layer.type == "InnerProduct":  # flattened, or row by row over a 2-D input
        return size in (int(np.prod(shape)) * layer.p("num_output"), shape[-1] * layer.p("num_output"))
    # ncnn's blob channels: c of a 3-D blob; a 1-D blob of w values feeds a 1x1 Convolution as w channels
    # (the runtime runs it as an InnerProduct: PP-OCRv5 det's convolutions after a global pooling)
    one_by_one = layer.type == "Convolution" and layer.p("kernel_w") == layer.p("kernel_h") == 1
    channels = shape[0] if len(shape) == 3 or (len(shape) == 1 and one_by_one) else 1
    group = layer.p("group") if layer.type == "ConvolutionDepthWise" else 1
    return channels * layer.p("num_output") * layer.p("kernel_w") * layer.p("kernel_h") == size * group


# -- running the model ---------------------------------------------------------------------------
def batches(specs: Sequence[InputSpec], batch_size: int, limit: int | None = None) -> list[range]:
    """The image index ranges of the batches (fixed, so results never depend on the thread count)."""
    n = len(specs[0].paths) if limit is None else min(limit, len(specs[0].paths))
    return [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def load_batch(specs: Sequence[InputSpec], indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The stacked, preprocessed inputs of a batch, ``{blob: (N, c, h, w)}`` (all of one size)."""
    groups = load_groups(specs, indices)
    if len(groups) > 1:
        raise NcnncError("the images of a batch have different sizes (give shape= to resize them)",
                         str(specs[0].paths[indices[0]]))
    return groups[0]


def load_groups(specs: Sequence[InputSpec], indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """A batch as runs of consecutive images of one size each, ``[{blob: (n, c, h, w)}, ...]``
    (several runs only when inputs keep their own size, ``shape=[0,0]``)."""
    tensors = [{s.blob: s.load(i) for s in specs} for i in indices]
    groups: list[list[dict[str, np.ndarray]]] = []
    for t in tensors:
        if groups and all(groups[-1][0][b].shape == t[b].shape for b in t):
            groups[-1].append(t)
        else:
            groups.append([t])
    return [{b: np.stack([t[b] for t in g]) for b in g[0]} for g in groups]


@dataclass
class ObservePass:
    """A shard task: one pass of a shard's batches through the model, shown to a copy of ``stats``.

    Returns the shard's statistics.  ``keep`` (the first pass of a multi-pass method): what the
    calibrators' ``replay_form`` makes of each batch is kept on the worker, within its budget, and
    later passes replay it instead of running the model again; the last pass frees it.
    """

    stats: dict[str, Calibrator]
    keep: bool = False

    def __call__(self, worker: Worker, shard: Sequence[range], tick: Callable[[int], None]
                 ) -> dict[str, Calibrator]:
        """Run the pass on ``shard`` with ``worker``'s interpreter; the statistics."""
        stats = copy.deepcopy(self.stats)  # the task object may be shared by the shards of one worker
        blobs = list(stats)
        for indices in shard:
            key = ("replay", indices.start)
            replay = worker.kept(key, drop=not self.keep)
            if replay is not None:
                for group in replay:
                    for blob, value in group.items():
                        _observe(stats, blob, value)
            else:
                kept: list[dict[str, np.ndarray]] = []
                for inputs in load_groups(worker.job.specs, indices):
                    seen: dict[str, np.ndarray] = {}

                    def observe(name: str, value: np.ndarray, seen: dict = seen) -> None:
                        _observe(stats, name, value)
                        if self.keep and name in stats:
                            seen[name] = stats[name].replay_form(value)

                    worker.interpreter().run(inputs, outputs=blobs, observe=observe)
                    kept.append(seen)
                if self.keep:
                    worker.keep(key, kept, sum(v.nbytes for group in kept for v in group.values()))
            tick(len(indices))
        return stats


def _observe(stats: dict[str, Calibrator], blob: str, value: np.ndarray) -> None:
    if blob in stats:
        try:
            stats[blob].observe(value)
        except ValueError as e:
            raise NcnncError(f"blob {blob!r}: {e}") from None


def observe_pass(graph: Graph, specs: Sequence[InputSpec], stats: dict[str, Calibrator], *,
                 batch_size: int = DEFAULT_BATCH) -> dict[str, Calibrator]:
    """One pass of these images through the model, fed to ``stats`` (blob -> calibrator), in place.

    The building block for sharding by hand (other processes or machines): run pass 1 on every
    shard, merge, call ``next_pass``, give each shard a copy, run pass 2, merge, and so on.
    """
    seen = ObservePass(stats)(Worker(Job(graph, list(specs))), batches(specs, batch_size), lambda n: None)
    stats.update(seen)
    return stats


def run_statistics(session: Session, shards: Sequence[Sequence[range]], blobs: Sequence[str],
                   make: Callable[[], Calibrator],
                   progress: Callable[[int, int], Callable[[int], None]] | None = None) -> dict[str, Calibrator]:
    """Every pass of one calibrator per blob over ``shards`` on an open executor session.

    Each pass starts every shard from the same statistics (the merged ones of the pass before,
    after ``next_pass``) and merges the shards' results in shard order as they arrive.
    """
    stats = {b: make() for b in blobs}
    passes = max((c.passes for c in stats.values()), default=1)
    for k in range(passes):
        if k:
            for cal in stats.values():
                if k < cal.passes:
                    cal.next_pass()
        tick = progress(k, passes) if progress else (lambda n: None)
        merged: dict[str, Calibrator] | None = None
        for part in session.map(ObservePass(stats, keep=k + 1 < passes), shards, tick):
            if merged is None:
                merged = part
            else:
                for blob, cal in merged.items():
                    cal.merge(part[blob])
        stats = merged if merged is not None else stats
    return stats


@dataclass
class SearchThreshold:
    """``(absmax, threshold, scale)`` of a blob's merged calibrator (run where the session puts it)."""

    stats: dict[str, Calibrator]

    def __call__(self, blob: str) -> tuple[float | None, float, float]:
        """The search of one blob (kl's is the costly one)."""
        cal = self.stats[blob]
        threshold = cal.threshold()
        return reported_absmax(cal), threshold, activation_scale(threshold)


def collect_statistics(graph: Graph, specs: Sequence[InputSpec], blobs: Sequence[str],
                       make: Callable[[], Calibrator], *, threads: int = 1, batch_size: int = DEFAULT_BATCH,
                       limit: int | None = None, cache_mb: int = 1024,
                       progress: Callable[[int, int], Callable[[int], None]] | None = None,
                       executor: Executor | None = None) -> dict[str, Calibrator]:
    """One calibrator per blob, shown every batch ``passes`` times; the merged statistics.

    The batches are cut into the shards ``executor`` asks for (default: ``threads`` contiguous
    shards run by forked processes).  The statistics do not depend on the executor or the number
    of shards (fixed batches, exact merges in shard order).  ``progress(pass_index, passes)``
    returns a callback taking image counts as they finish.  ``cache_mb`` bounds the activations
    kept in memory between passes (the rest is recomputed).
    """
    executor = executor or LocalExecutor(threads)
    plan = batches(specs, batch_size, limit)
    with executor.open(Job(graph, list(specs), cache_mb << 20)) as session:
        return run_statistics(session, split(plan, executor.shard_count(len(plan))), blobs, make, progress)


# -- the API ---------------------------------------------------------------------------------------
@dataclass
class LayerReport:
    """What calibration found for one layer (ncnn2table's ``max / threshold / scale`` line)."""

    name: str
    blob: str
    absmax: float | None
    threshold: float
    scale: float


@dataclass
class CalibrationResult:
    """The table, a report per layer, the counts and the time it took."""

    table: CalibrationTable
    layers: list[LayerReport] = field(default_factory=list)
    method: str = ""
    images: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the command line."""
        return (f"calibrated {len(self.layers)} layers with {self.method} on {self.images} images "
                f"in {self.seconds:.1f} s")


@dataclass
class RefineContext:
    """What a factory's ``refine`` gets: the model, the table to adjust in place, and data access.

    ``batches(limit)`` yields ``{blob: (N, ...)}`` input batches of the first ``limit`` images;
    ``map_shards(task, limit, desc)`` runs a shard task on them through the calibration's executor
    (its workers already hold the model); ``params`` are the method's resolved parameters;
    ``progress(desc, total)`` starts a progress bar and returns its ``update(n)``.
    """

    graph: Graph
    targets: list[Target]
    table: CalibrationTable
    params: dict[str, Any]
    specs: list[InputSpec]
    batch_size: int
    threads: int
    progress: Callable[[str, int], Callable[[int], None]] = lambda desc, total: (lambda n: None)
    executor: Executor | None = None
    session: Session | None = None

    def map_shards(self, task: Callable[[Worker, Sequence[range], Callable[[int], None]], Any],
                   limit: int | None = None, desc: str = "") -> Iterator[Any]:
        """``task(worker, shard, tick)`` on the shards of the first ``limit`` images; results in shard order.

        Runs on the calibration's executor session when there is one, else in this process.
        """
        plan = batches(self.specs, self.batch_size, limit)
        tick = self.progress(desc, self.count(limit))
        if self.session is None or self.executor is None:
            return _run_here(Job(self.graph, self.specs), task, plan, tick)
        return self.session.map(task, split(plan, self.executor.shard_count(len(plan))), tick)

    def batches(self, limit: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Input batches of the first ``limit`` images (all if None)."""
        for indices in batches(self.specs, self.batch_size, limit):
            yield from load_groups(self.specs, indices)

    def count(self, limit: int | None = None) -> int:
        """How many images ``batches(limit)`` yields."""
        n = len(self.specs[0].paths)
        return n if limit is None else min(n, limit)


def _run_here(job: Job, task: Callable[..., Any], plan: list[range], tick: Callable[[int], None]
                  ) -> Iterator[Any]:
    """One shard of every batch, run here."""
    yield task(Worker(job), plan, tick)


def load_graph(model: Graph | str | Path, bin_path: str | Path | None = None) -> Graph:
    """A graph, or an ncnn model read from ``.param`` + ``.bin``."""
    if isinstance(model, Graph):
        return model
    from ncnnc.frontends.ncnn import load

    if bin_path is None:
        raise NcnncError("give the .bin file with the .param", str(model))
    return load(str(model), str(bin_path))


def calibrate(model: Graph | str | Path, bin_path: str | Path | None = None,
              lists: str | Path | Sequence[str | Path | Sequence[str | Path]] = (),
              out: str | Path | None = None, *, method: str = "kl",
              method_params: Mapping[str, Any] | None = None,
              mean: Sequence[Sequence[float]] | Sequence[float] = (),
              norm: Sequence[Sequence[float]] | Sequence[float] = (),
              shape: Sequence[Sequence[int]] | Sequence[int] = (),
              pixel: Sequence[str] | str = (), npy: bool = False, threads: int = 1,
              batch_size: int = DEFAULT_BATCH, cache_mb: int = 1024, progress: bool = False,
              executor: Executor | str | Any | None = None, scheduler: str | None = None,
              winograd_bits: int = 6) -> CalibrationResult:
    """Calibrate a model on images and return (and with ``out``, write) its table.

    ``lists``: one list file / directory / sequence of paths per model input (a single one, or a
    flat sequence of image paths, for a one-input model).  ``mean``, ``norm``, ``shape``
    (ncnn2table's ``[w, h, c]``) and ``pixel`` are per input; a flat list is taken as the value
    for a one-input model.  ``method`` names a registered calibrator, ``method_params`` its
    parameters (the keyword :func:`ncnnc.compile` takes too).  ``threads`` processes share the batches.
    ``winograd_bits`` (6 as ncnn2table, or 8) sets the weight scales of 3x3 stride-1 convolutions
    (:func:`weight_scales`).

    ``executor`` says where the work runs: ``"local"`` (default: ``threads`` processes here), a
    ``distributed.Client``, ``"dask"`` with a ``scheduler`` address (``tcp://host:8786``), or an
    :class:`~ncnnc.core.executors.Executor`.  The table is the same bytes whichever runs it.

    >>> import ncnnc  # doctest: +SKIP
    >>> ncnnc.calibrate("m.param", "m.bin", "images.txt", "m.table", mean=[104, 117, 123],
    ...                 norm=[1, 1, 1], shape=[227, 227, 3], pixel="BGR", method="kl")
    """
    start = time.perf_counter()
    factory = find_calibrator(method)
    resolved = factory.resolve(method_params)
    check_winograd_bits(winograd_bits)
    graph = load_graph(model, bin_path)
    specs = input_specs(graph, per_input_lists(graph, lists), mean=per_input_values(mean), norm=per_input_values(norm),
                        shape=per_input_values(shape), pixel=[pixel] if isinstance(pixel, str) else list(pixel),
                        npy=npy)
    if not 1 <= threads <= MAX_THREADS:
        raise NcnncError(f"thread={threads}: expected 1 to {MAX_THREADS}")
    runner = make_executor(executor, scheduler, threads)
    if batch_size < 1:
        raise NcnncError(f"batch size {batch_size}: need at least 1")
    check_shapes(graph, specs)
    targets = quant_targets(graph)
    blobs = list(dict.fromkeys(t.source for t in targets))
    count = len(specs[0].paths)

    bars = _ProgressBars(progress)
    plan = batches(specs, batch_size)
    session = runner.open(Job(graph, specs, cache_mb << 20))
    try:
        stats = run_statistics(session, split(plan, runner.shard_count(len(plan))), blobs,
                               lambda: factory.make(resolved),
                               progress=lambda k, n: bars.new(f"{method} pass {k + 1}/{n}", count))
        table = CalibrationTable()
        layers = []
        for t in targets:
            table.weight_scales[t.name] = weight_scales(t.layer, factory.weights, winograd_bits)
        found = dict(zip(stats, session.map_here(SearchThreshold(stats), list(stats))))  # one search each
        for t in targets:
            absmax, threshold, scale = found[t.source]
            table.input_scales[t.name] = scale
            layers.append(LayerReport(t.name, t.blob, absmax, threshold, scale))
        if factory.refine is not None:
            from ncnnc.backends.numpy.blas import single_thread

            with single_thread():  # refiners run numpy ops outside the interpreter too (eq's int8 layers)
                factory.refine(RefineContext(graph, targets, table, resolved, specs, batch_size, threads, bars.new,
                                             runner, session))
            for rep in layers:
                rep.scale = table.input_scales[rep.name]
                rep.threshold = INT8_MAX / rep.scale
    finally:
        session.close()
        bars.close()
    if out is not None:
        table.save(out)
    return CalibrationResult(table, layers, method, count, time.perf_counter() - start)


INPUT_FILE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy")
"""Suffixes of files that are inputs themselves, not lists of inputs."""


def per_input_lists(graph: Graph, lists: str | Path | Sequence[Any]) -> list[Any]:
    """``lists`` as one entry per model input.

    A single list/directory, or for a one-input model a flat sequence of image (or ``.npy``) paths
    (``["a.jpg", "b.jpg"]``, as ``mean=`` takes a flat list), is that one input's entry.
    """
    if isinstance(lists, (str, Path)):
        return [lists]
    lists = list(lists)
    if len(graph.inputs) == 1 and lists and all(
            isinstance(x, (str, Path)) and Path(x).suffix.lower() in INPUT_FILE_SUFFIXES for x in lists):
        return [lists]
    return lists


def per_input_values(values: Sequence[Any]) -> list[Any]:
    """A flat list of numbers is one input's value; a list of lists is per input."""
    values = list(values)
    if values and not isinstance(values[0], (list, tuple, np.ndarray)):
        return [values]
    return values


class _ProgressBars:
    """tqdm bars over images (shown on a terminal only); all closed at the end, error or not."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: list[Any] = []

    def new(self, desc: str, total: int) -> Callable[[int], None]:
        """A new bar; returns its ``update(n)``."""
        shown = self.enabled and sys.stderr is not None and sys.stderr.isatty()  # tqdm's disable=None rule
        if not shown:  # decided without importing tqdm (a twentieth of a second)
            return lambda n: None
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="img", leave=False)
        self.bars.append(bar)
        return bar.update

    def close(self) -> None:
        """Close every bar."""
        for bar in self.bars:
            bar.close()
