"""ncnnc: a plugin-based graph compiler that turns trained networks into fast int8 ncnn models.

The Python API mirrors the command line::

    import ncnnc
    graph = ncnnc.load_model(["squeezenet.param", "squeezenet.bin"])   # or a .onnx, .prototxt + .caffemodel
    ncnnc.infer_shapes(graph)
    ncnnc.save_model(graph, "out.param", "out.bin")
"""

from ncnnc.backends.llvm.jit import jit
from ncnnc.backends.ncnn_writer import save as save_model
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.calibration import calibrate as calibrate
from ncnnc.core.frontend import load_model
from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.optimize import optimize as optimize
from ncnnc.core.pipeline import compile as compile
from ncnnc.core.registry import registry
from ncnnc.core.shapes import infer_shapes
from ncnnc.core.table import CalibrationTable

__version__ = "0.1.0"

__all__ = [
    "CalibrationTable",
    "Graph",
    "GraphBuilder",
    "Layer",
    "Weight",
    "infer_shapes",
    "jit",
    "load_model",
    "registry",
    "save_model",
]
