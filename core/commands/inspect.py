"""``ncnnc inspect``: layers, params, weights, blob shapes and MACs of a model.

Without a shape for an input whose Input layer has none, the layers, params and weights are still
listed, with shapes and MACs shown as ``?``.  Columns are as wide as their longest entry (ONNX
names are long).  The shape is given as ``--shape w,h,c`` or ``shape=[w,h,c]``, and must fit the
first convolution's weights.
"""

from __future__ import annotations

import argparse
from collections import Counter

from ncnnc.core.cost import graph_macs
from ncnnc.core.errors import NcnncError
from ncnnc.core.frontend import load_model
from ncnnc.core.input_check import check_shape_fits
from ncnnc.core.shapes import infer_shapes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc inspect``."""
    parser.add_argument("paths", nargs="+", metavar="MODEL",
                        help="MODEL.param [MODEL.bin] (or another frontend's files), optionally shape=[w,h,c]")
    parser.add_argument("--shape", action="append", default=[],
                        help="input shape as ncnn's w,h,c, e.g. [227,227,3] (default: the Input layer's); "
                             "repeat it for the inputs of a multi-input model")
    parser.add_argument("--input", action="append", default=[],
                        help="which input the --shape of the same position applies to (default: the model's "
                             "inputs in order), e.g. --input data --shape [224,224,3] --input im_info --shape [3]")
    parser.add_argument("--summary", action="store_true", help="print only the totals")


def parse_shape(text: str) -> tuple[int, ...]:
    """``[w,h,c]`` (ncnn order) -> numpy-order shape ``(c, h, w)``."""
    try:
        dims = [int(v) for v in text.strip("[] ").split(",") if v.strip()]
    except ValueError:
        raise NcnncError(f"shape {text!r} is not a list of integers like [227,227,3]") from None
    if not 1 <= len(dims) <= 4 or any(d <= 0 for d in dims):
        raise NcnncError(f"shape {text!r} needs 1 to 4 positive sizes (w,h,c)")
    return tuple(reversed(dims))


def _fmt_bytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _params(layer) -> str:
    """The layer's explicit params as ``id=value`` (ncnn's .param syntax)."""
    values = layer.params.values
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(values.items()))


def split_shapes(text: str) -> list[str]:
    """ncnn2table's per-input form ``[w,h,c],[w]`` -> one text per input."""
    return [t if t.startswith("[") else f"[{t}" for t in text.replace("],[", "]\n[").split("\n")]


def given_shapes(graph, texts: list[str], names: list[str]) -> dict[str, tuple[int, ...]]:
    """The shapes given, by input blob: the i-th ``--shape`` for the i-th ``--input`` (without
    ``--input``: the model's inputs in order)."""
    if names and len(names) != len(texts):
        raise NcnncError(f"{len(names)} --input for {len(texts)} --shape: give one --input per --shape")
    if len(texts) > len(graph.inputs):
        raise NcnncError(f"{len(texts)} shapes for a model with {len(graph.inputs)} input(s) "
                         f"({', '.join(graph.inputs) or 'none'})")
    names = names or graph.inputs[: len(texts)]
    for name in names:
        if name not in graph.inputs:
            raise NcnncError(f"--input {name!r} is not an input of the model (inputs: {', '.join(graph.inputs)})")
    return {name: parse_shape(text) for name, text in zip(names, texts)}


def run(args: argparse.Namespace) -> int:
    """Print the per-layer table and the totals."""
    words = [w for w in args.paths if w.startswith("shape=")]
    paths = [w for w in args.paths if not w.startswith("shape=")]
    if words and args.shape:
        raise NcnncError(f"shape given twice ({words[0]} and --shape {args.shape[0]}): give it once, either way")
    texts = [t for w in words for t in split_shapes(w.partition("=")[2])] or args.shape
    graph = load_model(paths)
    given = given_shapes(graph, texts, args.input)
    unknown = ""
    if texts:
        check_shape_fits(graph, given, "shape=" + ",".join(f"[{t.strip('[]')}]" for t in texts))
    else:
        try:
            infer_shapes(graph, {})
        except NcnncError as e:
            graph.shapes = {}
            unknown = f"shapes unknown: {e}"
    macs = graph_macs(graph) if not unknown else {}
    storage: Counter[str] = Counter()
    for layer in graph.layers:
        for w in layer.weights.values():
            storage[w.storage] += w.nbytes_stored
    if not args.summary:
        rows = [("type", "name", "output shape (c,h,w)", "MACs", "weights", "params")]
        for layer in graph.layers:
            if unknown:
                shape, mac = "?", "?"
            else:
                shape = ",".join(str(s) for s in graph.shapes.get(layer.outputs[0], ())) if layer.outputs else ""
                mac = f"{macs[layer.name]:,}" if macs[layer.name] else ""
            weights = " ".join(f"{n}:{w.storage}:{w.nbytes_stored}" for n, w in layer.weights.items())
            rows.append((layer.type, layer.name, shape, mac, weights, _params(layer)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}  "
                  f"{r[4]:<{widths[4]}}  {r[5]}".rstrip())
        print()
    types = Counter(layer.type for layer in graph.layers)
    print(f"layers: {len(graph)} ({', '.join(f'{t} {n}' for t, n in types.most_common())})")
    print(f"blobs: {len(graph.blobs)}; inputs: {', '.join(graph.inputs)}; outputs: {', '.join(graph.outputs)}")
    if storage:
        print("weights: " + ", ".join(f"{k} {_fmt_bytes(v)}" for k, v in sorted(storage.items()))
              + f"; total {_fmt_bytes(sum(storage.values()))}")
    if unknown:
        print(f"MACs: ? ({unknown})")
    else:
        total = sum(macs.values())
        print(f"MACs: {total:,} = {total / 1e6:.2f} M")
    return 0
