"""ncnnc: a plugin-based graph compiler that turns trained networks into fast int8 ncnn models.

The Python API mirrors the command line::

    import ncnnc
    graph = ncnnc.load_model(["squeezenet.param", "squeezenet.bin"])   # or a .onnx, .prototxt + .caffemodel
    ncnnc.infer_shapes(graph)
    ncnnc.save_model(graph, "out.param", "out.bin")

A problem with the user's input is raised as ``ncnnc.NcnncError``, whose ``str()`` is the command line's one
error line (file, place, problem).

The names are imported on first use (PEP 562), so ``import ncnnc`` and the ``ncnnc`` command start
fast.  In the ``ncnnc`` command itself an interrupt during start-up ends it quietly (status 130)
instead of with a traceback from whatever was being imported; ``ncnnc.core.cli.main`` takes over the
signal handling once it runs.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys


def _startup_interrupt(signum: int, frame: object) -> None:
    """SIGINT before the CLI's own handlers exist: nothing written yet, nothing to clean; exit quietly."""
    os.write(2, b"ncnnc: interrupted\n")
    os._exit(128 + signum)


if os.path.basename(sys.argv[0] if sys.argv else "") == "ncnnc":
    signal.signal(signal.SIGINT, _startup_interrupt)

__version__ = "0.1.0"

_API = {
    "jit": ("ncnnc.backends.llvm.jit", "jit"),
    "save_model": ("ncnnc.backends.ncnn_writer", "save"),
    "GraphBuilder": ("ncnnc.core.builder", "GraphBuilder"),
    "calibrate": ("ncnnc.core.calibration", "calibrate"),
    "load_model": ("ncnnc.core.frontend", "load_model"),
    "Graph": ("ncnnc.core.ir", "Graph"),
    "Layer": ("ncnnc.core.ir", "Layer"),
    "Weight": ("ncnnc.core.ir", "Weight"),
    "optimize": ("ncnnc.core.optimize", "optimize"),
    "compile": ("ncnnc.core.pipeline", "compile"),
    "registry": ("ncnnc.core.registry", "registry"),
    "infer_shapes": ("ncnnc.core.shapes", "infer_shapes"),
    "CalibrationTable": ("ncnnc.core.table", "CalibrationTable"),
    "NcnncError": ("ncnnc.core.errors", "NcnncError"),
}
"""Public name -> (module, attribute), imported on first access."""


def __getattr__(name: str) -> object:
    """Import a public name on first use."""
    if name not in _API:
        raise AttributeError(f"module 'ncnnc' has no attribute {name!r}")
    module, attr = _API[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, loaded or not."""
    return sorted([*globals(), *_API])


__all__ = [
    "CalibrationTable",
    "Graph",
    "GraphBuilder",
    "Layer",
    "NcnncError",
    "Weight",
    "infer_shapes",
    "jit",
    "load_model",
    "registry",
    "save_model",
]
