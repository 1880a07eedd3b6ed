"""Shared checks of the LLVM backend's tests: a graph's compiled outputs against the numpy simulation.

``compare_jit(graph, inputs)`` compiles for the host, runs every input set, and returns the largest
absolute difference per output next to the simulation's values; ``assert_matches`` asserts bit
equality (``atol=0``) or a documented tolerance.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.llvm.jit import jit
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.ir import Graph


def simulate(graph: Graph, inputs: dict[str, np.ndarray], family: str | None = None) -> dict[str, np.ndarray]:
    """The numpy backend's outputs for one unbatched input set, with ncnn's arithmetic on the CPU ``family``
    (default: this machine's)."""
    out = Interpreter(graph, family).run({k: v[None] for k, v in inputs.items()})
    return {k: np.asarray(v[0], np.float32) for k, v in out.items()}


def run_jit(graph: Graph, inputs: dict[str, np.ndarray], target: str = "host") -> dict[str, np.ndarray]:
    """The host JIT's outputs for one unbatched input set (no disk cache: tests build fresh code)."""
    return jit(graph, target, use_cache=False)(inputs)


def assert_matches(got: dict[str, np.ndarray], want: dict[str, np.ndarray], atol: float = 0.0,
                   rtol: float = 0.0) -> None:
    """Every output present with the same shape; values equal (NaN equal to NaN) within the tolerance."""
    assert set(got) == set(want), (sorted(got), sorted(want))
    for name in want:
        g, w = np.asarray(got[name]), np.asarray(want[name])
        assert g.shape == w.shape, (name, g.shape, w.shape)
        if atol == 0 and rtol == 0:
            same = (g == w) | (np.isnan(g) & np.isnan(w))
            assert same.all(), f"{name}: {int((~same).sum())} of {g.size} values differ, largest " \
                               f"{np.nanmax(np.abs(g.astype(np.float64) - w))}"
        else:
            np.testing.assert_allclose(g, w, atol=atol, rtol=rtol, equal_nan=True, err_msg=name)


QUANTIZED_TYPES = ("Convolution", "ConvolutionDepthWise", "InnerProduct")


def quantize_absmax(graph: Graph, calib: list[dict[str, np.ndarray]], headroom: float = 100.0) -> Graph:
    """``graph`` quantized by the real quantizer with a table made here: weight scales ``127 / absmax``
    per output channel (per group for depthwise), input scales ``headroom / absmax`` of each quantized
    layer's fp32 input over the ``calib`` input sets (numpy backend)."""
    from ncnnc.core.table import CalibrationTable
    from ncnnc.plugins.quantizer import quantize

    quant = [layer for layer in graph.layers if layer.type in QUANTIZED_TYPES]
    interp, absmax = Interpreter(graph), {}
    for inputs in calib:
        blobs = interp.run({k: v[None] for k, v in inputs.items()}, [layer.inputs[0] for layer in quant])
        for layer in quant:
            absmax[layer.name] = max(absmax.get(layer.name, 0.0), float(np.abs(blobs[layer.inputs[0]]).max()))
    table = CalibrationTable()
    for layer in quant:
        rows = layer.p("group") if layer.type == "ConvolutionDepthWise" else layer.p("num_output")
        w = np.abs(layer.weight("weight").reshape(rows, -1)).max(1)
        table.weight_scales[layer.name] = (127 / w).astype(np.float32)
        table.input_scales[layer.name] = float(headroom / absmax[layer.name])
    return quantize(graph, table).graph
