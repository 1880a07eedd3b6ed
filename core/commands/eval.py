"""``ncnnc eval``: an fp32 model vs its int8 version on images (accuracy, agreement, per-layer similarity).

``ncnnc eval FP32.param FP32.bin INT8.param INT8.bin IMAGES --labels synset_words.txt
mean=[104,117,123] shape=[227,227,3] [--backend ncnn|numpy|llvm]``

``--backend llvm`` runs both models as native code compiled for this machine (the host JIT).
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "eval"
HELP = "compare an fp32 model and its int8 version on images: top-1/top-5, agreement, per-layer cosine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc eval``."""
    from ncnnc.core.commands.compile import allow_intermixed
    from ncnnc.core.commands.preprocessing import add_flags

    allow_intermixed(parser)
    add_flags(parser)
    parser.add_argument("fp32_param", metavar="FP32.param")
    parser.add_argument("fp32_bin", metavar="FP32.bin")
    parser.add_argument("int8_param", metavar="INT8.param")
    parser.add_argument("int8_bin", metavar="INT8.bin")
    parser.add_argument("images", metavar="IMAGES", help="a list file or a directory of images")
    parser.add_argument("options", nargs="*", metavar="OPTION", help="preprocessing: mean=[..] norm=[..] "
                        "shape=[w,h,c] pixel=BGR (as ncnn2table)")
    parser.add_argument("--labels", metavar="SYNSET_WORDS", help="class list; image names start with the WordNet id")
    parser.add_argument("--backend", choices=("ncnn", "numpy", "llvm"), default="ncnn",
                        help="run the models in the real ncnn runtime (default), the numpy backend or as native "
                             "code (llvm, host JIT)")
    parser.add_argument("--limit", type=int, metavar="N", help="use only the first N images")
    parser.add_argument("--worst", type=int, default=10, metavar="N", help="how many layers to list (default 10)")
    parser.add_argument("--report", metavar="REPORT.html",
                        help="also write a quantization report with charts (needs ncnnc[report])")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of the summary")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the report."""
    from ncnnc.core.commands.compile import parse_number_list, split_items
    from ncnnc.core.commands.preprocessing import merge
    from ncnnc.core.errors import NcnncError
    from ncnnc.core.evaluate import evaluate

    _, options, unknown = split_items(["-", *args.options])
    options = merge(args, options)
    if "method" in options or "thread" in options or unknown:
        raise NcnncError("eval takes only mean=, norm=, shape= and pixel=")
    result = evaluate((args.fp32_param, args.fp32_bin), (args.int8_param, args.int8_bin), args.images,
                      labels=args.labels,
                      mean=parse_number_list("mean", options["mean"]) if "mean" in options else (),
                      norm=parse_number_list("norm", options["norm"]) if "norm" in options else (),
                      shape=[int(v) for v in parse_number_list("shape", options["shape"])] if "shape" in options
                      else (), pixel=options.get("pixel", "BGR"), backend=args.backend, limit=args.limit,
                      progress=True)
    if args.report:
        write_eval_report(args, result, options)
    print(json.dumps(result.to_dict(), indent=1) if args.json else result.summary(args.worst))
    return 0


def write_eval_report(args: argparse.Namespace, result, options: dict[str, str]) -> None:
    """The HTML report of an evaluation: activation statistics of the fp32 model over the same images."""
    from pathlib import Path

    from ncnnc.core.calibration import input_specs
    from ncnnc.core.commands.compile import parse_number_list
    from ncnnc.core.report import quantization_report
    from ncnnc.core.report_html import write_html
    from ncnnc.frontends.ncnn import load

    g32, g8 = load(args.fp32_param, args.fp32_bin), load(args.int8_param, args.int8_bin)
    specs = input_specs(g32, [args.images], **{k: [parse_number_list(k, options[k])] for k in ("mean", "norm")
                                               if k in options},
                        shape=[[int(v) for v in parse_number_list("shape", options["shape"])]] if "shape" in options
                        else [], pixel=[options.get("pixel", "BGR")])
    report = quantization_report(g32, g8, specs, result, title=f"ncnnc quantization report: {args.int8_param}",
                                 fp32_bytes=Path(args.fp32_bin).stat().st_size,
                                 int8_bytes=Path(args.int8_bin).stat().st_size, limit=args.limit)
    write_html(report, args.report)
    print(f"wrote {args.report}", file=sys.stderr)
