"""The preprocessing options every verb takes in both spellings: ncnn2table's ``mean=[104,117,123]``
words and ``--mean 104,117,123`` flags (``mean``, ``norm``, ``shape``, ``pixel``)."""

from __future__ import annotations

import argparse

from ncnnc.core.errors import NcnncError

KEYS = ("mean", "norm", "shape", "pixel")
HELP = {"mean": "values to subtract per channel, e.g. 104,117,123 (same as mean=[104,117,123])",
        "norm": "factors per channel, e.g. 1,1,1 (same as norm=[1,1,1])",
        "shape": "input size as ncnn's w,h[,c], e.g. 227,227,3 (same as shape=[227,227,3])",
        "pixel": "image channel order: RGB, BGR, GRAY, RGBA, BGRA or RAW (same as pixel=BGR)"}


def add_flags(parser: argparse.ArgumentParser, keys: tuple[str, ...] = KEYS) -> None:
    """``--mean``, ``--norm``, ``--shape``, ``--pixel`` (the ``key=value`` words stay accepted)."""
    for key in keys:
        parser.add_argument(f"--{key}", dest=f"pre_{key}", metavar="W,H[,C]" if key == "shape" else key.upper(),
                            help=HELP[key])


def merge(args: argparse.Namespace, options: dict[str, str], keys: tuple[str, ...] = KEYS) -> dict[str, str]:
    """The ``key=value`` options with the ``--key`` flags added; a key given both ways is a user error."""
    out = dict(options)
    for key in keys:
        flag = getattr(args, f"pre_{key}", None)
        if flag is None:
            continue
        if key in out:
            raise NcnncError(f"{key} given twice ({key}={out[key]} and --{key} {flag}): give it once, either way")
        out[key] = flag
    return out
