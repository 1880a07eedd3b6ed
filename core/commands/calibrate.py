"""``ncnnc calibrate``: ``ncnnc table`` with ordinary ``--option`` arguments."""

from __future__ import annotations

import argparse

from ncnnc.core.calibration import DEFAULT_BATCH, DEFAULT_THREADS, calibrate
from ncnnc.core.commands.arguments import at_least
from ncnnc.core.commands.table import parse_float_lists, parse_int_lists
from ncnnc.core.errors import NcnncError
from ncnnc.core.executors import EXECUTORS, make_executor
from ncnnc.core.winograd import WINOGRAD_BITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``IN.param IN.bin LIST[,LIST] OUT.table`` and options; per-input options repeat per input."""
    from ncnnc.core.commands.compile import allow_intermixed

    allow_intermixed(parser)
    parser.add_argument("model_param", metavar="IN.param")
    parser.add_argument("model_bin", metavar="IN.bin")
    parser.add_argument("lists", metavar="LIST[,LIST]",
                        help="image list (one path per line) or directory, one per model input, comma separated")
    parser.add_argument("out", metavar="OUT.table")
    parser.add_argument("words", nargs="*", metavar="KEY=VALUE",
                        help="preprocessing as ncnn2table writes it, mean=[..] norm=[..] shape=[..] pixel=.. "
                             "(the same as the --mean/--norm/--shape/--pixel flags)")
    parser.add_argument("--method", default="kl", help="calibration method (see 'ncnnc plugins calibrators')")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter of the method, e.g. --param percentile=99.9 (repeatable)")
    parser.add_argument("--mean", action="append", default=[], metavar="A,B,C",
                        help="mean values to subtract (once per input)")
    parser.add_argument("--norm", action="append", default=[], metavar="A,B,C",
                        help="normalisation factors (once per input)")
    parser.add_argument("--shape", action="append", default=[], metavar="W,H[,C]",
                        help="input size as ncnn2table's shape (once per input)")
    parser.add_argument("--pixel", action="append", default=[], help="RAW/RGB/BGR/GRAY/RGBA/BGRA (once per input)")
    parser.add_argument("--npy", action="store_true", help="the lists name .npy tensors (ncnn2table's type=1)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="worker processes (default: every core; the table does not depend on it)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"images per forward pass (default {DEFAULT_BATCH})")
    parser.add_argument("--cache-mb", type=at_least(0), default=1024,
                        help="memory for activations kept between passes (the rest is recomputed)")
    parser.add_argument("--executor", choices=EXECUTORS, default=None,
                        help="where the work runs: local processes (default) or a Dask cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask scheduler address, e.g. tcp://host:8786 (implies --executor dask)")
    parser.add_argument("--shard-batches", type=at_least(1), default=None, metavar="N",
                        help="batches per Dask task (default 8)")
    parser.add_argument("--winograd-bits", type=int, choices=WINOGRAD_BITS, default=6,
                        help="weights of 3x3 stride-1 convolutions: 6 bits as ncnn2table (default), or 8: per "
                             "channel as fine as ncnn's int8 winograd computes exactly")
    parser.add_argument("--verbose", "-v", action="store_true", help="print absmax / threshold / scale per layer")


def _per_input(values: list[str], key: str, ints: bool = False) -> list:
    parse = parse_int_lists if ints else parse_float_lists
    return [group for v in values for group in parse(v if "[" in v else f"[{v}]", key)]


def run(args: argparse.Namespace) -> int:
    """Calibrate, write the table, print a summary (and the per-layer report with --verbose)."""
    for word in args.words:
        key, eq, value = word.partition("=")
        if not eq or key not in ("mean", "norm", "shape", "pixel"):
            raise NcnncError(f"{word}: expected mean=[..], norm=[..], shape=[..] or pixel=.. (method parameters "
                             "go in --param KEY=VALUE)")
        if getattr(args, key):
            raise NcnncError(f"{key} given twice ({word} and --{key}): give it once, either way")
        setattr(args, key, [value])
    params = {}
    for item in args.param:
        if "=" not in item:
            raise NcnncError(f"--param {item}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        params[key] = value
    result = calibrate(args.model_param, args.model_bin, [p for p in args.lists.split(",") if p], args.out,
                       method=args.method, method_params=params, mean=_per_input(args.mean, "--mean"),
                       norm=_per_input(args.norm, "--norm"), shape=_per_input(args.shape, "--shape", ints=True),
                       pixel=[p for v in args.pixel for p in v.split(",") if p], npy=args.npy,
                       threads=args.threads, batch_size=args.batch_size, cache_mb=args.cache_mb, progress=True,
                       executor=make_executor(args.executor, args.scheduler, args.threads, args.shard_batches),
                       winograd_bits=args.winograd_bits)
    if args.verbose:
        for rep in result.layers:
            absmax = f"{rep.absmax:<15f}" if rep.absmax is not None else f"{'-':<15}"
            print(f"{rep.name:<40} : max = {absmax}  threshold = {rep.threshold:<15f}  scale = {rep.scale:<15f}")
    print(f"{result.summary()}; wrote {args.out}")
    return 0
