"""``ncnnc run``: run a model on images or ``.npy`` tensors with the numpy backend (or the real ncnn
runtime, or native code from the LLVM backend), print the top classes, optionally save every output blob.

``--backend llvm`` compiles the model for ``--target`` (default ``host``): a target this machine runs is
JIT-compiled into this process; another one (``armv8``) is linked with the C driver and run in its own
process (aarch64 under ``qemu-aarch64``), all inputs in one run.

A multi-input model takes one INPUT file per input blob for each run, in the order of the ``--input``
options (default: the model's inputs), e.g. ``img1.jpg info1.npy img2.jpg info2.npy --input data --input
im_info``; ``shape=[w,h,c],[w]`` (ncnn2table's per-input form, as ``inspect`` takes it) gives each input
its own shape: an image's size, or the shape a ``.npy`` must have.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ncnnc.core.commands.arguments import at_least
from ncnnc.core.commands.preprocessing import add_flags, merge
from ncnnc.core.errors import NcnncError
from ncnnc.core.fileio import atomic_outputs
from ncnnc.core.ir import Graph
from ncnnc.core.preprocess import PIXEL_TYPES, load_image, substract_mean_normalize

BATCH = 32
OPTION_KEYS = ("mean", "norm", "shape", "pixel")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc run``."""
    from ncnnc.core.commands.compile import allow_intermixed

    allow_intermixed(parser)
    parser.add_argument("args", nargs="+", metavar="ARG",
                        help="MODEL.param MODEL.bin (or MODEL.onnx, MODEL.prototxt MODEL.caffemodel) INPUT... "
                             f"[mean=[..]] [norm=[..]] [shape=[w,h(,c)]] [pixel={'|'.join(PIXEL_TYPES)}]; "
                             "INPUT is an image or a float32 c,h,w .npy")
    add_flags(parser)
    parser.add_argument("--input", action="append",
                        help="input blob; repeat it for a multi-input model, whose INPUT files then go one per "
                             "--input in this order for each run (default: the model's inputs)")
    parser.add_argument("--output", action="append", help="output blob (repeatable; default: the model's outputs)")
    parser.add_argument("--top", type=at_least(1), default=5, metavar="K",
                        help="classes to print per output (default 5)")
    parser.add_argument("--labels", help="class names, one per line (synset_words.txt)")
    parser.add_argument("--save", metavar="OUT.npz", help="save every output blob, stacked over the inputs")
    parser.add_argument("--backend", choices=("numpy", "ncnn", "llvm"), default="numpy",
                        help="numpy interpreter (default), the real ncnn runtime, or native code (llvm)")
    parser.add_argument("--target", metavar="NAME",
                        help="with --backend llvm: the CPU target (default host; a target this machine cannot "
                             "run, e.g. armv8, is linked and run under qemu)")


def parse_options(tokens: Sequence[str], flags: argparse.Namespace | None = None) -> tuple[list[str], dict]:
    """Split ``key=value`` options (ncnn2table's syntax) from paths, add ``--key`` flags; values parsed and checked."""
    paths, words = [], {}
    for tok in tokens:
        key, eq, value = tok.partition("=")
        if not eq or key not in OPTION_KEYS:
            paths.append(tok)
        else:
            words[key] = value
    options: dict = {}
    for key, value in (merge(flags, words) if flags is not None else words).items():
        if key == "pixel":
            if value.upper() not in PIXEL_TYPES:
                raise NcnncError(f"pixel={value}: expected one of {', '.join(PIXEL_TYPES)}")
            options[key] = value.upper()
            continue
        if key == "shape" and "],[" in value.replace(" ", ""):  # one shape per input
            from ncnnc.core.commands.inspect import parse_shape, split_shapes

            options["shapes"] = [list(reversed(parse_shape(t))) for t in split_shapes(value.replace(" ", ""))]
            continue
        try:
            items = [v for v in value.strip("[]").split(",") if v.strip()]
            options[key] = [int(v) for v in items] if key == "shape" else [float(v) for v in items]
        except ValueError:
            raise NcnncError(f"{key}={value}: expected a list of numbers such as [104,117,123]") from None
        if key == "shape" and len(options[key]) not in (2, 3):
            raise NcnncError(f"shape={value}: expected [w,h] or [w,h,c]")
    return paths, options


def input_options(options: dict, blobs: Sequence[str]) -> dict[str, dict]:
    """The options for each input blob: the shared ones, with that input's own ``shape`` when
    ``shape=[..],[..]`` gave one per input."""
    shapes = options.get("shapes")
    if shapes is None:
        return {b: options for b in blobs}
    if len(shapes) != len(blobs):
        raise NcnncError(f"{len(shapes)} shapes for {len(blobs)} input(s) ({', '.join(blobs)}): give one per input")
    shared = {k: v for k, v in options.items() if k != "shapes"}
    return {b: {**shared, "shape": shape} for b, shape in zip(blobs, shapes)}


def _input_shape(graph: Graph, name: str) -> tuple[int, ...] | None:
    layer = graph.producer(name)
    if layer is None or layer.type != "Input":
        return None
    dims = [layer.p("c"), layer.p("h"), layer.p("w")]
    return tuple(d for d in dims if d) if all(dims[-1:]) else None


def read_input(path: str, options: dict, declared: tuple[int, ...] | None) -> np.ndarray:
    """One input tensor (c, h, w): a ``.npy`` as is, or a preprocessed image."""
    if path.endswith(".npy"):
        if declared is None and "shape" in options:  # the input's own shape=[w,h,c] where the model has none
            declared = tuple(reversed(options["shape"]))
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise NcnncError(f"cannot read .npy: {e}", path) from None
        if arr.dtype != np.float32:
            raise NcnncError(f"expected a float32 array, got {arr.dtype}", path)
        if declared and arr.shape != declared:
            raise NcnncError(f"array shape {arr.shape} does not match the input blob's {declared}", path)
        if not 1 <= arr.ndim <= 4:
            raise NcnncError(f"array of {arr.ndim} dimensions is not an ncnn blob (c,h,w)", path)
        return arr
    shape = options.get("shape")
    if shape is None:
        shape = (declared[-1], declared[-2]) if declared and len(declared) >= 2 else (0, 0)
    x = load_image(path, options.get("pixel", "BGR"), shape)
    return substract_mean_normalize(x, options.get("mean"), options.get("norm"))


def _run_numpy(graph: Graph, feeds: list[dict[str, np.ndarray]], outputs: list[str]) -> dict[str, np.ndarray]:
    from ncnnc.backends.numpy import Interpreter

    interp = Interpreter(graph)
    parts: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
    for start in range(0, len(feeds), BATCH):
        try:
            batch = {b: np.stack([f[b] for f in feeds[start:start + BATCH]]) for b in feeds[0]}
        except ValueError:
            raise NcnncError("inputs have different shapes; give shape=[w,h] to resize images alike") from None
        for name, value in interp.run(batch, outputs).items():
            parts[name].append(value)
    return {o: np.concatenate(v) for o, v in parts.items()}


def _run_ncnn(param: str, binf: str, feeds: list[dict[str, np.ndarray]], outputs: list[str]) -> dict:
    from ncnnc.backends.ncnn_runtime import RuntimeNet

    net = RuntimeNet(param, binf, num_threads=1)
    results = [net.run(feed, outputs) for feed in feeds]
    return {o: np.stack([r[o] for r in results]) for o in outputs}


def _run_llvm(graph: Graph, feeds: list[dict[str, np.ndarray]], outputs: list[str],
              target: str | None) -> dict[str, np.ndarray]:
    """Native code: the host JIT for a target this machine runs, else the linked driver (qemu for aarch64)."""
    from ncnnc.backends.llvm import build, jit
    from ncnnc.backends.llvm.native import run_native
    from ncnnc.backends.llvm.targets import is_native, resolve

    resolved = resolve(target or "host")
    # The code cache is keyed by params and weights, not by which blobs are outputs: other outputs than the
    # model's own are compiled fresh.
    use_cache = list(outputs) == graph.outputs
    if not use_cache:
        graph = graph.copy()
        graph.explicit_outputs = list(outputs)
    input_shapes = {}
    for blob in feeds[0] if feeds else ():
        shapes = {tuple(f[blob].shape) for f in feeds}
        if len(shapes) > 1:
            raise NcnncError("inputs have different shapes; give shape=[w,h] to resize images alike")
        input_shapes[blob] = shapes.pop()
    if is_native(resolved):
        model = jit(graph, resolved, input_shapes=input_shapes or None, use_cache=use_cache)
        results = [model(feed) for feed in feeds]
    else:
        built = build(graph, resolved, input_shapes=input_shapes or None, use_cache=use_cache)
        results = run_native(built, feeds, target=resolved)
    return {o: np.stack([r[o] for r in results]) for o in outputs}


def _labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise NcnncError(f"cannot read labels: {e.strerror}", path) from None
    return [line.split(" ", 1)[1] if " " in line else line for line in lines]


def split_model(paths: list[str]) -> tuple[list[str], list[str]]:
    """The model files (whichever frontend reads them: ``.param .bin``, ``.onnx``, ``.prototxt .caffemodel``)
    at the start of ``paths``, and the rest."""
    from ncnnc.core.calibration import INPUT_FILE_SUFFIXES
    from ncnnc.core.registry import registry

    frontends = registry().all("frontends")
    for n in (2, 1):
        head = paths[:n]
        if len(head) < n or (n == 2 and Path(head[1]).suffix.lower() in INPUT_FILE_SUFFIXES):
            continue
        if any(f.item.claims(head) for f in frontends):
            return head, paths[n:]
    usages = "; ".join(f.item.usage for f in frontends if f.item.usage)
    raise NcnncError(f"expected model files first ({usages}), then INPUT...")


def _say_defaults(options: dict, declared: tuple[int, ...] | None) -> None:
    """State the preprocessing used for images when some of it was not given (nothing silent)."""
    missing = [k for k in OPTION_KEYS if k not in options]
    if not missing:
        return
    shape = (f"shape=[{declared[-1]},{declared[-2]}] from the Input layer" if declared and len(declared) >= 2
             else "each image's own size")
    used = {"pixel": "pixel=BGR", "shape": shape, "mean": "no mean", "norm": "no norm"}
    print(f"ncnnc run: preprocessing not given, using {', '.join(used[k] for k in missing)} "
          "(set with mean=[..] norm=[..] shape=[w,h] pixel=.. or --mean/--norm/--shape/--pixel)", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the model and print the top classes of each output for each input."""
    from ncnnc.core.frontend import load_model
    from ncnnc.core.input_check import PIXEL_CHANNELS, check_mean_norm, check_shape_fits

    paths, options = parse_options(args.args, args)
    model, inputs = split_model(paths)
    if not inputs:
        raise NcnncError(f"no INPUT given after the model files ({' '.join(model)})")
    try:
        graph = load_model(model)
    except NcnncError:  # an input without a fixed size (ONNX): the images' shape gives it
        if "shape" not in options:  # (one shape for all: per-input shapes do not reach the ONNX reader)
            raise
        w, h, *c = options["shape"]
        graph = load_model(model, shape=[w, h, *(c or [PIXEL_CHANNELS.get(options.get("pixel", "BGR"), 3)])])
    missing = graph.missing_weights()
    if missing:
        raise NcnncError(f"layer {missing[0][0].name} has no weights: give the model's weights too", model[0])
    check_mean_norm(options.get("mean"), options.get("norm"), options.get("pixel", "BGR"), shape=options.get("shape"))
    param = model[0]
    blobs = args.input or list(graph.inputs)
    outputs = args.output or graph.outputs
    known = set(graph.blobs)
    for name in [*blobs, *outputs]:
        if name not in known:
            raise NcnncError(f"no blob named {name!r} in the model", param)
    if len(inputs) % len(blobs):
        raise NcnncError(f"{len(inputs)} INPUT file(s) for {len(blobs)} inputs ({', '.join(blobs)}): give one file "
                         "per input for each run, in that order")
    per_input = input_options(options, blobs)
    labels = _labels(args.labels)
    declared = {b: _input_shape(graph, b) for b in blobs}
    groups = [inputs[i:i + len(blobs)] for i in range(0, len(inputs), len(blobs))]
    feeds = [{b: read_input(p, per_input[b], declared[b]) for b, p in zip(blobs, group)} for group in groups]
    setting = ("shape=" + ",".join(f"[{','.join(map(str, per_input[b]['shape']))}]" for b in blobs)
               if "shapes" in options else f"shape=[{','.join(map(str, options['shape']))}]" if "shape" in options
               else "the input")
    check_shape_fits(graph, {b: tuple(t.shape) for b, t in feeds[0].items()}, setting)
    images = [b for b, p in zip(blobs, groups[0]) if not p.endswith(".npy")]
    if images:
        _say_defaults(per_input[images[0]], declared[images[0]])
    if args.target and args.backend != "llvm":
        raise NcnncError("--target needs --backend llvm")
    if args.backend == "numpy":
        results = _run_numpy(graph, feeds, outputs)
    elif args.backend == "llvm":
        results = _run_llvm(graph, feeds, outputs, args.target)
    elif len(model) == 2 and model[0].endswith(".param"):
        results = _run_ncnn(model[0], model[1], feeds, outputs)
    else:  # another frontend's model: the runtime reads it as the ncnn model ncnnc converts it to
        from ncnnc.backends.ncnn_runtime import run_graph

        per = [run_graph(graph, feed, outputs) for feed in feeds]
        results = {o: np.stack([r[o] for r in per]) for o in outputs}
    for i, group in enumerate(groups):
        for name in outputs:
            _print_top(" + ".join(group), name, results[name][i], args.top, labels)
    if args.save:
        with atomic_outputs(args.save) as (tmp,), open(tmp, "wb") as f:
            np.savez(f, **results)
        print(f"wrote {args.save}: {', '.join(f'{k} {v.shape}' for k, v in results.items())}")
    return 0


def _print_top(path: str, blob: str, value: np.ndarray, k: int, labels: list[str] | None) -> None:
    flat = value.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:max(k, 0)]
    print(f"{path}: {blob} {tuple(value.shape)}")
    for rank, idx in enumerate(order, 1):
        label = f"  {labels[idx]}" if labels and idx < len(labels) else ""
        print(f"  {rank}. {idx:5d}  {flat[idx]:.6f}{label}")
