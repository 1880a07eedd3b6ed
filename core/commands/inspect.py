"""``ncnnc inspect``: layers, blob shapes, weight storage and MACs of a model."""

from __future__ import annotations

import argparse
from collections import Counter

from ncnnc.core.cost import graph_macs
from ncnnc.core.errors import NcnncError
from ncnnc.core.frontend import load_model
from ncnnc.core.shapes import infer_shapes

NAME = "inspect"
HELP = "show a model's layers, blob shapes, weight bytes per storage and MACs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc inspect``."""
    parser.add_argument("paths", nargs="+", metavar="MODEL",
                        help="MODEL.param [MODEL.bin] (or another frontend's files)")
    parser.add_argument("--shape", help="input shape as ncnn's w,h,c, e.g. [227,227,3] (default: the Input layer's)")
    parser.add_argument("--input", default=None, help="which input --shape applies to (default: the first)")
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


def run(args: argparse.Namespace) -> int:
    """Print the per-layer table and the totals."""
    graph = load_model(args.paths)
    given = {}
    if args.shape:
        name = args.input or (graph.inputs[0] if graph.inputs else None)
        if name is None:
            raise NcnncError("the model has no Input layer to give a shape to")
        given[name] = parse_shape(args.shape)
    infer_shapes(graph, given)
    macs = graph_macs(graph)
    storage: Counter[str] = Counter()
    for layer in graph.layers:
        for w in layer.weights.values():
            storage[w.storage] += w.nbytes_stored
    if not args.summary:
        print(f"{'type':<22} {'name':<28} {'output shape (c,h,w)':<22} {'MACs':>12}")
        for layer in graph.layers:
            shape = ",".join(str(s) for s in graph.shapes.get(layer.outputs[0], ())) if layer.outputs else ""
            mac = f"{macs[layer.name]:,}" if macs[layer.name] else ""
            print(f"{layer.type:<22} {layer.name:<28} {shape:<22} {mac:>12}")
        print()
    types = Counter(layer.type for layer in graph.layers)
    print(f"layers: {len(graph)} ({', '.join(f'{t} {n}' for t, n in types.most_common())})")
    print(f"blobs: {len(graph.blobs)}; inputs: {', '.join(graph.inputs)}; outputs: {', '.join(graph.outputs)}")
    if storage:
        print("weights: " + ", ".join(f"{k} {_fmt_bytes(v)}" for k, v in sorted(storage.items()))
              + f"; total {_fmt_bytes(sum(storage.values()))}")
    total = sum(macs.values())
    print(f"MACs: {total:,} = {total / 1e6:.2f} M")
    return 0
