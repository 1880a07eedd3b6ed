"""``ncnnc optimize``: ncnnoptimize's command line (``IN.param IN.bin OUT.param OUT.bin [FLAG]``).

``FLAG`` is ncnnoptimize's storage flag: ``0`` writes fp32 weights, ``1`` or ``65536`` fp16;
without it each weight keeps the storage it had.  ``--disable``/``--only`` pick passes by name
(``ncnnc plugins`` lists them), ``-v`` prints every change of every pass.
"""

from __future__ import annotations

import argparse

NAME = "optimize"
HELP = "fuse and eliminate layers of an ncnn model (as ncnnoptimize)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc optimize``."""
    parser.add_argument("in_param", metavar="IN.param")
    parser.add_argument("in_bin", metavar="IN.bin")
    parser.add_argument("out_param", metavar="OUT.param")
    parser.add_argument("out_bin", metavar="OUT.bin")
    parser.add_argument("flag", metavar="FLAG", nargs="?",
                        help="weight storage: 0 = fp32, 1 or 65536 = fp16 (default: keep each weight's)")
    parser.add_argument("--disable", metavar="NAME[,NAME]", default="", help="passes not to run")
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run only these passes")
    parser.add_argument("--level", type=int, choices=(0, 1, 2), default=2,
                        help="1: only bit-exact rewrites, 2: also fold constants into weights (default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each pass and what it changed")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def run(args: argparse.Namespace) -> int:
    """Optimize, write the model, print the summary."""
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.optimize import optimize, storage_from_flag
    from ncnnc.frontends.ncnn import load

    storage = storage_from_flag(args.flag)
    graph = load(args.in_param, args.in_bin)
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
