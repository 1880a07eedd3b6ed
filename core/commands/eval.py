"""``ncnnc eval``: an fp32 model vs its int8 version on images (accuracy, agreement, per-layer similarity).

``ncnnc eval FP32.param FP32.bin INT8.param INT8.bin IMAGES --labels synset_words.txt
mean=[104,117,123] shape=[227,227,3] [--backend ncnn|numpy|llvm]``; the fp32 model may be any frontend's
files (``model.onnx``, ``model.prototxt model.caffemodel``), converted to ncnn for the run.

``--backend llvm`` runs both models as native code compiled for this machine (the host JIT).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ncnnc.core.commands.arguments import at_least


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc eval``."""
    from ncnnc.core.commands.compile import allow_intermixed
    from ncnnc.core.commands.preprocessing import add_flags

    allow_intermixed(parser)
    add_flags(parser)
    parser.add_argument("args", nargs="+", metavar="FP32.param FP32.bin INT8.param INT8.bin IMAGES [OPTION]",
                        help="the fp32 model (FP32.param FP32.bin, or MODEL.onnx, or MODEL.prototxt "
                             "MODEL.caffemodel), the int8 ncnn model, a list file or a directory of images, then "
                             "preprocessing: mean=[..] norm=[..] shape=[w,h,c] pixel=BGR (as ncnn2table)")
    parser.add_argument("--labels", metavar="SYNSET_WORDS", help="class list; image names start with the WordNet id")
    parser.add_argument("--backend", choices=("ncnn", "numpy", "llvm"), default="ncnn",
                        help="run the models in the real ncnn runtime (default), the numpy backend or as native "
                             "code (llvm, host JIT)")
    parser.add_argument("--limit", type=at_least(1), metavar="N", help="use only the first N images")
    parser.add_argument("--worst", type=at_least(0), default=10, metavar="N",
                        help="how many layers to list (default 10)")
    parser.add_argument("--report", metavar="REPORT.html",
                        help="also write a quantization report with charts (needs ncnnc[report])")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of the summary")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the report."""
    from ncnnc.core.commands.compile import split_items
    from ncnnc.core.commands.preprocessing import merge
    from ncnnc.core.commands.run import split_model
    from ncnnc.core.errors import NcnncError

    fp32_model, rest = split_model([a for a in args.args if "=" not in a])
    if len(rest) != 3:
        raise NcnncError("usage: ncnnc eval FP32.param FP32.bin INT8.param INT8.bin IMAGES [OPTION ...] "
                         "(or MODEL.onnx INT8.param INT8.bin IMAGES ...)")
    args.int8_param, args.int8_bin, args.images = rest
    _, options, unknown = split_items(["-", *(a for a in args.args if "=" in a)])
    options = merge(args, options)
    if "method" in options or "thread" in options or unknown:
        raise NcnncError("eval takes only mean=, norm=, shape= and pixel=")
    with ncnn_files(fp32_model, options.get("shape")) as (args.fp32_param, args.fp32_bin):
        return _evaluate(args, options)


@contextmanager
def ncnn_files(model: list[str], shape: str | None) -> Iterator[tuple[str, str]]:
    """The model as ncnn ``.param``/``.bin`` paths: its own, or another frontend's model converted into a
    temporary folder (an ONNX input without a fixed size takes ``shape=[w,h,c]``)."""
    if len(model) == 2 and model[0].endswith(".param"):
        yield model[0], model[1]
        return
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.commands.compile import parse_number_list
    from ncnnc.core.commands.table import model_graph

    graph = model_graph(model, [[int(v) for v in parse_number_list("shape", shape)]] if shape else None)
    with tempfile.TemporaryDirectory(prefix="ncnnc-eval-") as folder:
        param, binf = str(Path(folder) / "fp32.param"), str(Path(folder) / "fp32.bin")
        save(graph, param, binf)
        yield param, binf


def _evaluate(args: argparse.Namespace, options: dict[str, str]) -> int:
    """Evaluate the fp32 and int8 ncnn models, print (and write) the result."""
    from ncnnc.core.commands.compile import parse_number_list
    from ncnnc.core.evaluate import evaluate

    result = evaluate((args.fp32_param, args.fp32_bin), (args.int8_param, args.int8_bin), args.images,
                      labels=args.labels,
                      mean=parse_number_list("mean", options["mean"]) if "mean" in options else (),
                      norm=parse_number_list("norm", options["norm"]) if "norm" in options else (),
                      shape=[int(v) for v in parse_number_list("shape", options["shape"])] if "shape" in options
                      else None, pixel=options.get("pixel", "BGR"), backend=args.backend, limit=args.limit,
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
