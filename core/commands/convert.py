"""``ncnnc convert``: read a model with any frontend and write it as an ncnn model."""

from __future__ import annotations

import argparse

from ncnnc.backends.ncnn_writer import convert_storage, save
from ncnnc.core.frontend import load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc convert``."""
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="input model file(s) followed by OUT.param OUT.bin")
    parser.add_argument("--fp16", action="store_true", help="store weights as fp16")
    parser.add_argument("--shape", help="input shape for models whose input size is not fixed, e.g. [227,227,3]")


def run(args: argparse.Namespace) -> int:
    """Convert and print a one-line summary."""
    from ncnnc.core.errors import NcnncError

    if len(args.paths) < 3:
        raise NcnncError("expected INPUT... OUT.param OUT.bin")
    *inputs, out_param, out_bin = args.paths
    options = {"shape": args.shape} if args.shape else {}
    graph = load_model(inputs, **options)
    if args.fp16:
        convert_storage(graph, "fp16")
    save(graph, out_param, out_bin)
    print(f"wrote {out_param} and {out_bin}: {len(graph)} layers, {len(graph.blobs)} blobs")
    return 0
