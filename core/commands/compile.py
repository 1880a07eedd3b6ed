"""``ncnnc compile``: the whole pipeline (optimize -> calibrate -> quantize) in one command.

``ncnnc compile MODEL... --int8 --calib LIST_OR_DIR mean=[104,117,123] norm=[1,1,1]
shape=[227,227,3] pixel=BGR method=kl [--auto-mixed-precision] -o OUTDIR`` writes
``OUTDIR/model.param``, ``model.bin`` and ``model.table``.

``--target NAME`` (``ncnnc plugins targets`` lists them) also generates native code with the LLVM
backend: ``model.o`` and ``model.h`` (with ``--emit-asm`` ``model.s``, with ``--emit-llvm`` ``model.ll``)
beside the model, all files or none.  Without ``--int8`` the optimized fp32 model is compiled.
"""

from __future__ import annotations

import argparse

from ncnnc.core.calibration import DEFAULT_THREADS
from ncnnc.core.commands.preprocessing import add_flags, merge
from ncnnc.core.commands.table import parse_float_lists, parse_int_lists
from ncnnc.core.errors import NcnncError
from ncnnc.core.executors import EXECUTORS, make_executor
from ncnnc.core.mixed_precision import DEFAULT_TARGET_COS
from ncnnc.core.pipeline import QUALITIES
from ncnnc.core.winograd import WINOGRAD_BITS

OPTION_KEYS = ("mean", "norm", "shape", "pixel", "method", "thread")


def allow_intermixed(parser: argparse.ArgumentParser) -> None:
    """Let ``key=value`` words follow ``--flags`` (``MODEL --int8 --calib DIR mean=[..] -o OUT``).

    argparse stops filling a ``nargs`` positional at the first flag; its intermixed parsing does not.
    """
    plain = parser.parse_known_args

    def parse(args=None, namespace=None):
        parser.parse_known_args = plain
        try:
            return parser.parse_known_intermixed_args(args, namespace)
        finally:
            parser.parse_known_args = parse

    parser.parse_known_args = parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc compile``."""
    allow_intermixed(parser)
    add_flags(parser)
    parser.add_argument("items", nargs="+", metavar="MODEL_OR_OPTION",
                        help="model file(s) (ncnn .param .bin, .onnx, .prototxt .caffemodel), then ncnn2table-style "
                             "options: mean=[..] norm=[..] shape=[w,h,c] pixel=BGR method=kl thread=N and "
                             "the method's parameters (method=percentile percentile=99.9)")
    parser.add_argument("--int8", action="store_true", help="quantize to int8 (needs --calib)")
    parser.add_argument("--calib", metavar="LIST_OR_DIR[,...]",
                        help="calibration images: a list file or a directory (one per input for a model with "
                             "several, comma-separated, with mean=[..],[..] shape=[w,h,c],[w] pixel=BGR,RAW)")
    parser.add_argument("--fp32-layers", metavar="NAME[,NAME]", default="", help="layers to keep fp32")
    parser.add_argument("--auto-mixed-precision", action="store_true",
                        help="keep the layers int8 hurts most fp32 until --target-cos holds")
    parser.add_argument("--target-cos", type=float, default=DEFAULT_TARGET_COS, metavar="C",
                        help=f"with --auto-mixed-precision: the worst-image output cosine similarity to reach "
                             f"(default {DEFAULT_TARGET_COS})")
    parser.add_argument("--amp-images", type=int, default=16, metavar="N",
                        help="with --auto-mixed-precision: calibration images used to measure sensitivity, "
                             "the N hardest (lowest all-int8 output cosine) of up to 4N (default 16)")
    parser.add_argument("--target", metavar="NAME",
                        help="also generate native code for this CPU target: model.o + model.h (e.g. host, "
                             "x86-64-v3, armv8, armv8.2-dotprod; `ncnnc plugins targets` lists them)")
    parser.add_argument("--emit-asm", action="store_true", help="with --target: also write model.s (assembly)")
    parser.add_argument("--emit-llvm", action="store_true", help="with --target: also write model.ll (LLVM IR)")
    parser.add_argument("--executor", choices=EXECUTORS, default=None,
                        help="where calibration runs: local processes (default) or a Dask cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask scheduler address, e.g. tcp://host:8786 (implies --executor dask)")
    parser.add_argument("--report", metavar="REPORT.html",
                        help="with --int8: also write a quantization report with charts (needs ncnnc[report])")
    parser.add_argument("--equalize", action="store_true",
                        help="cross-layer equalization of consecutive convolutions before calibration (fp32 identity)")
    parser.add_argument("--bias-correction", action="store_true",
                        help="correct each int8 layer's bias by its mean output error on the calibration images")
    parser.add_argument("--act-scale", action="store_true",
                        help="search each int8 layer's input scale for its smallest output error (after calibration)")
    parser.add_argument("--adaround", action="store_true",
                        help="learn each int8 weight's rounding (up/down) to minimise the layer's output error")
    parser.add_argument("--winograd-bits", type=int, choices=WINOGRAD_BITS, default=None,
                        help="weights of 3x3 stride-1 convolutions: 6 bits as ncnn2table (default), or 8: per "
                             "channel as fine as ncnn's int8 winograd computes exactly (--quality high: 8)")
    parser.add_argument("--asymmetric", action=argparse.BooleanOptionalAction, default=None,
                        help="quantize the inputs of layers that read ReLU outputs with 255 levels instead of 128 "
                             "(shifted by the producers, added back in the consumers' biases; in --quality high)")
    parser.add_argument("--equalize-activations", action="store_true",
                        help="before calibration, scale channels between convolutions so each gets a similar share "
                             "of its blob's int8 range, measured on the calibration images (fp32 identity)")
    parser.add_argument("--exact-input", action=argparse.BooleanOptionalAction, default=None,
                        help="the int8 input of a convolution that reads the image is the pixel itself (a Scale "
                             "layer in front maps it to pixel - 128; fp32 identity; in --quality high)")
    parser.add_argument("--quality", choices=QUALITIES, default="default",
                        help="preset: high = --act-scale --adaround --winograd-bits 8 --asymmetric --exact-input")
    parser.add_argument("--refine-images", type=int, default=100, metavar="N",
                        help="calibration images the refine steps use (--quality high, --act-scale, --adaround, "
                             "--bias-correction; default 100)")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")


def _only_with(needed: str, flags: tuple[tuple[str, object], ...]) -> None:
    """A user error naming the given ``flags`` (``(flag, given)`` pairs) that do nothing without ``needed``."""
    given = [flag for flag, on in flags if on]
    if given:
        verb = "apply" if len(given) > 1 else "applies"
        raise NcnncError(f"{', '.join(given)} {verb} only with {needed}")


def parse_number_list(key: str, text: str) -> list[float]:
    """``[104,117,123]`` (brackets optional) -> ``[104.0, 117.0, 123.0]``."""
    body = text.strip().removeprefix("[").removesuffix("]")
    try:
        return [float(v) for v in body.split(",") if v.strip()]
    except ValueError:
        raise NcnncError(f"{key}={text}: expected numbers like [104,117,123]") from None


def split_items(items: list[str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Model paths, ``key=value`` options, and the calibration method's own parameters.

    As in ``ncnnc table``, a key that is not an option is a parameter of the method
    (``method=percentile percentile=99.9``); the method checks the names before any work.
    """
    paths, options, method_params = [], {}, {}
    for item in items:
        key, eq, value = item.partition("=")
        if eq and key in OPTION_KEYS:
            options[key] = value
        elif eq and key and "/" not in key and "." not in key:
            method_params[key] = value
        else:
            paths.append(item)
    if not paths:
        raise NcnncError("no model files given")
    return paths, options, method_params


def check_method_params(method: str, method_params: dict[str, str]) -> None:
    """A user error for a ``key=`` that is neither an option nor a parameter of the method."""
    from ncnnc.core.calibration import find_calibrator

    factory = find_calibrator(method)
    known = [p.name for p in (*factory.params, *factory.refine_params)]
    for key in method_params:
        if key not in known:
            raise NcnncError(f"unknown option {key}= (options: {', '.join(OPTION_KEYS)}; parameters of "
                             f"method={method}: {', '.join(known) or 'none'})")
    factory.resolve(method_params)


def run(args: argparse.Namespace) -> int:
    """Compile and print the summary."""
    from ncnnc.core.commands.quantize import parse_layer_list
    from ncnnc.core.pipeline import compile

    paths, options, method_params = split_items(args.items)
    options = merge(args, options)
    check_method_params(options.get("method", "kl"), method_params)
    if args.int8 and not args.calib:
        raise NcnncError("--int8 needs calibration images: --calib LIST_OR_DIR")
    if not args.int8:
        _only_with("--int8 (without it the fp32 model is compiled)", (
            ("--calib", args.calib), ("--auto-mixed-precision", args.auto_mixed_precision),
            ("--fp32-layers", args.fp32_layers), ("--target-cos", args.target_cos != DEFAULT_TARGET_COS),
            ("--amp-images", args.amp_images != 16), ("method=", "method" in options), ("--report", args.report),
            ("--equalize", args.equalize), ("--bias-correction", args.bias_correction), ("--adaround", args.adaround),
            ("--act-scale", args.act_scale), ("--winograd-bits", args.winograd_bits is not None),
            ("--asymmetric", args.asymmetric is not None),
            ("--equalize-activations", args.equalize_activations),
            ("--exact-input", args.exact_input is not None),
            ("--quality", args.quality != "default"), ("--refine-images", args.refine_images != 100),
            (" ".join(f"{k}=" for k in method_params), method_params)))
    elif not args.auto_mixed_precision:
        _only_with("--auto-mixed-precision", (("--target-cos", args.target_cos != DEFAULT_TARGET_COS),
                                              ("--amp-images", args.amp_images != 16)))
    if args.int8 and args.quality == "default" and not (args.adaround or args.bias_correction or args.act_scale):
        _only_with("a refine step (--quality high, --adaround, --bias-correction or --act-scale)",
                   (("--refine-images", args.refine_images != 100),))
    if (args.emit_asm or args.emit_llvm) and not args.target:
        raise NcnncError(f"{'--emit-asm' if args.emit_asm else '--emit-llvm'} needs --target NAME")
    if args.target:
        from ncnnc.backends.llvm.targets import resolve

        resolve(args.target)  # an unknown target fails before any work
    try:
        threads = int(options.get("thread", str(DEFAULT_THREADS)))
    except ValueError:
        raise NcnncError(f"thread={options['thread']}: expected an integer") from None
    calib = args.calib.split(",") if args.calib and "," in args.calib else args.calib  # one list per input
    result = compile(paths, int8=args.int8, calib=calib,
                     mean=parse_float_lists(options["mean"], "mean") if "mean" in options else [],
                     norm=parse_float_lists(options["norm"], "norm") if "norm" in options else [],
                     shape=parse_int_lists(options["shape"], "shape") if "shape" in options else [],
                     pixel=[p for p in options.get("pixel", "BGR").split(",") if p],
                     method=options.get("method", "kl"),
                     method_params=method_params,
                     fp32_layers=parse_layer_list(args.fp32_layers), auto_mixed_precision=args.auto_mixed_precision,
                     target_cos=args.target_cos, amp_images=args.amp_images, threads=threads,
                     executor=make_executor(args.executor, args.scheduler, threads) if args.int8 else None,
                     target=args.target, emit_asm=args.emit_asm, emit_llvm=args.emit_llvm,
                     out_dir=args.output, progress=True, report_html=args.report,
                     equalize=args.equalize, bias_correction=args.bias_correction, adaround=args.adaround,
                     act_scale=args.act_scale, winograd_bits=args.winograd_bits,
                     asymmetric=args.asymmetric, equalize_activations=args.equalize_activations,
                     exact_input=args.exact_input, quality=args.quality, refine_images=args.refine_images)
    print(f"ncnnc compile: {paths[0]}")
    print(result.summary())
    return 0
