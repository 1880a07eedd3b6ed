"""``ncnnc table``: ncnn2table's command line, unchanged (any frontend's model files in place of ``IN.param IN.bin``).

``ncnnc table IN.param IN.bin LIST[,LIST...] OUT.table mean=[104,117,123] norm=[1,1,1]
shape=[227,227,3] pixel=BGR thread=2 method=kl`` -- the keys of ncnn2table (``mean``, ``norm``,
``shape``, ``pixel``, ``thread``, ``method``, ``type=1`` for ``.npy`` inputs; one bracketed array or
pixel type per model input, comma separated), plus ``batch=N``, ``cache=MB`` and the chosen
method's own parameters (``method=percentile percentile=99.9``).  ``executor=dask
scheduler=tcp://HOST:8786`` runs the work on a Dask cluster (``shard=N`` batches per task); the
table is the same bytes.
"""

from __future__ import annotations

import argparse
import re

from ncnnc.core.calibration import DEFAULT_THREADS, calibrate
from ncnnc.core.errors import NcnncError
from ncnnc.core.executors import make_executor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Positionals as ncnn2table: IN.param IN.bin LIST[,LIST] OUT.table key=value..."""
    parser.add_argument("args", nargs="+", metavar="ARG",
                        help="IN.param IN.bin LIST[,LIST...] OUT.table, then key=value: mean=[..] norm=[..] "
                             "shape=[w,h,c] pixel=RAW/RGB/BGR/GRAY/RGBA/BGRA thread=N method=NAME type=0/1 "
                             "batch=N cache=MB executor=local/dask scheduler=ADDRESS shard=N winograd=6/8 and the "
                             "method's parameters")


def parse_float_lists(value: str, key: str) -> list[list[float]]:
    """``[a,b,c],[d,e,f]`` -> one list per input (ncnn2table's array syntax)."""
    groups = re.findall(r"\[([^\]]*)\]", value) if "[" in value else [value]
    try:
        return [[float(v) for v in g.split(",") if v.strip()] for g in groups]
    except ValueError:
        raise NcnncError(f"{key}={value}: expected numbers like [104,117,123]") from None


def parse_int_lists(value: str, key: str) -> list[list[int]]:
    """``[w,h,c],[w,h]`` -> one integer list per input."""
    out = []
    for group in parse_float_lists(value, key):
        if any(v != int(v) for v in group):
            raise NcnncError(f"{key}={value}: expected integers like [227,227,3]")
        out.append([int(v) for v in group])
    return out


def parse_int(value: str, key: str, minimum: int) -> int:
    """A whole number no smaller than ``minimum``."""
    try:
        n = int(value)
    except ValueError:
        raise NcnncError(f"{key}={value}: expected a whole number") from None
    if n < minimum:
        raise NcnncError(f"{key}={value}: must be at least {minimum}")
    return n


def model_graph(model: list[str], shapes: list[list[int]] | None = None):
    """The model read by whichever frontend claims its files; ``shapes`` (``[w,h,c]`` per input) size an
    ONNX input that has no fixed size."""
    from ncnnc.core.frontend import load_model

    try:
        return load_model(model)
    except NcnncError:
        if not shapes or len(model) != 1:
            raise
        return load_model(model, shape=list(shapes[0]))


def run(args: argparse.Namespace) -> int:
    """Parse ncnn2table's arguments, calibrate, write the table, print a summary."""
    from ncnnc.core.commands.run import split_model

    positional = [a for a in args.args if "=" not in a]
    options = [a for a in args.args if "=" in a]
    if len(positional) not in (3, 4) or args.args[:len(positional)] != positional:
        raise NcnncError("usage: ncnnc table IN.param IN.bin LIST[,LIST...] OUT.table [key=value ...] "
                         "(or MODEL.onnx LIST OUT.table ..., MODEL.prototxt MODEL.caffemodel LIST OUT.table ...)")
    model, rest = split_model(positional)
    if len(rest) != 2:
        raise NcnncError("usage: ncnnc table MODEL... LIST[,LIST...] OUT.table [key=value ...]")
    lists, out = rest
    kw: dict = {"method": "kl", "threads": DEFAULT_THREADS}
    where: dict = {}
    method_params: dict[str, str] = {}
    for item in options:
        key, value = item.split("=", 1)
        if key == "mean":
            kw["mean"] = parse_float_lists(value, key)
        elif key == "norm":
            kw["norm"] = parse_float_lists(value, key)
        elif key == "shape":
            kw["shape"] = parse_int_lists(value, key)
        elif key == "pixel":
            kw["pixel"] = [p for p in value.split(",") if p]
        elif key == "thread":
            kw["threads"] = parse_int(value, key, 1)
        elif key == "method":
            kw["method"] = value
        elif key == "type":
            if value not in ("0", "1"):
                raise NcnncError(f"type={value}: expected 0 (images) or 1 (.npy)")
            kw["npy"] = value == "1"
        elif key == "batch":
            kw["batch_size"] = parse_int(value, key, 1)
        elif key == "cache":
            kw["cache_mb"] = parse_int(value, key, 0)
        elif key in ("executor", "scheduler"):
            where[key] = value
        elif key == "shard":
            where["shard_batches"] = parse_int(value, key, 1)
        elif key == "winograd":
            if value not in ("6", "8"):
                raise NcnncError(f"winograd={value}: expected 6 (ncnn2table's 6-bit 3x3 weights) or 8")
            kw["winograd_bits"] = int(value)
        else:
            method_params[key] = value
    executor = make_executor(where.get("executor"), where.get("scheduler"), kw["threads"], where.get("shard_batches"))
    graph = model_graph(model, kw.get("shape"))
    result = calibrate(graph, None, [p for p in lists.split(",") if p], out, method_params=method_params,
                       progress=True, executor=executor, **kw)
    print(f"{result.summary()}; wrote {out}")
    return 0
