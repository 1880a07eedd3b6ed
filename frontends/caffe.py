"""The Caffe frontend plugin: a text ``.prototxt`` plus a binary ``.caffemodel`` -> a graph of ncnn layers.

The reading is in :mod:`ncnnc.frontends.caffe_reader`, imported on first use: protobuf and the
schema would otherwise cost start-up time in every ``ncnnc`` command, since each one loads this plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ncnnc.core.frontend import Frontend
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph


def load(prototxt: str | Path, caffemodel: str | Path | None = None,
         shape: str | Sequence[int] | None = None) -> Graph:
    """Read a Caffe model: the network from ``prototxt``, the weights from ``caffemodel``."""
    from ncnnc.frontends.caffe_reader import load as read

    return read(prototxt, caffemodel, shape)


def _split_paths(paths: Sequence[str]) -> tuple[str, str | None] | None:
    protos = [p for p in paths if str(p).endswith(".prototxt")]
    models = [p for p in paths if str(p).endswith(".caffemodel")]
    if len(protos) == 1 and len(models) <= 1 and len(paths) == len(protos) + len(models):
        return protos[0], (models[0] if models else None)
    return None


def _claims(paths: list[str]) -> bool:
    return _split_paths(paths) is not None


def _load(paths: list[str], shape: str | Sequence[int] | None = None, **_options) -> Graph:
    prototxt, caffemodel = _split_paths(paths)  # type: ignore[misc]
    return load(prototxt, caffemodel, shape)


@hookimpl
def ncnnc_frontends() -> list[Frontend]:
    """The Caffe frontend."""
    return [Frontend("caffe", "Caffe .prototxt (layer or legacy V1 layers) + .caffemodel",
                     _claims, _load, usage="MODEL.prototxt MODEL.caffemodel")]
