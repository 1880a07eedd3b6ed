"""``ncnnc optimize``: ncnnoptimize's command line (``IN.param IN.bin OUT.param OUT.bin [FLAG]``).

The input may be any frontend's files: ``ncnnc optimize model.onnx OUT.param OUT.bin``,
``ncnnc optimize model.prototxt model.caffemodel OUT.param OUT.bin`` (``--shape w,h,c`` for an
ONNX model without a fixed input size).

``FLAG`` is ncnnoptimize's storage flag: ``0`` writes fp32 weights, ``1`` or ``65536`` fp16;
without it each weight keeps the storage it had.  ``--disable``/``--only`` pick passes by name
(``ncnnc plugins`` lists them), ``-v`` prints every change of every pass.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc optimize``."""
    parser.add_argument("paths", nargs="+", metavar="IN.param IN.bin OUT.param OUT.bin [FLAG]",
                        help="the model (IN.param IN.bin, or MODEL.onnx, or MODEL.prototxt MODEL.caffemodel), "
                             "OUT.param OUT.bin, and FLAG: weight storage 0 = fp32, 1 or 65536 = fp16 "
                             "(default: keep each weight's)")
    parser.add_argument("--shape", metavar="W,H[,C]", help="input size for a model without one (ONNX)")
    parser.add_argument("--disable", metavar="NAME[,NAME]", default="", help="passes not to run")
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run only these passes")
    parser.add_argument("--level", type=int, choices=(0, 1, 2), default=2,
                        help="1: only bit-exact rewrites, 2: also fold constants into weights (default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each pass and what it changed")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def split_paths(paths: list[str]) -> tuple[list[str], str, str, str | None]:
    """``MODEL... OUT.param OUT.bin [FLAG]`` -> model files, outputs, flag (a trailing whole number)."""
    from ncnnc.core.errors import NcnncError

    flag = paths[-1] if len(paths) == 5 or (len(paths) == 4 and paths[-1].lstrip("-").isdigit()) else None
    rest = paths[:-1] if flag is not None else paths
    if len(rest) < 3 or len(rest) > 4:
        raise NcnncError("usage: ncnnc optimize IN.param IN.bin OUT.param OUT.bin [FLAG] "
                         "(or MODEL.onnx OUT.param OUT.bin [FLAG])")
    return rest[:-2], rest[-2], rest[-1], flag


def run(args: argparse.Namespace) -> int:
    """Optimize, write the model, print the summary."""
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.frontend import load_model
    from ncnnc.core.optimize import optimize, storage_from_flag

    model, args.out_param, args.out_bin, flag = split_paths(args.paths)
    storage = storage_from_flag(flag)
    graph = load_model(model, **({"shape": args.shape} if args.shape else {}))
    report = optimize(graph, level=args.level, disable=_names(args.disable) or (), only=_names(args.only),
                      storage=storage)
    save(graph, args.out_param, args.out_bin)
    if args.verbose:
        print(report.passes.format(verbose=True))
    else:
        counts = report.passes.counts()
        if counts:
            print(", ".join(f"{name} x{n}" for name, n in counts.items()))
        for note in report.passes.notes:
            print(note)
    print(report.summary())
    print(f"wrote {args.out_param} and {args.out_bin}")
    return 0
