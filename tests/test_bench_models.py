"""bench/models.py: the EfficientNet-Lite0-like ONNX model converts with our frontend, computes what
onnxruntime computes, and has the stated size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.cost import graph_macs
from ncnnc.core.frontend import load_model
from ncnnc.core.shapes import infer_shapes

BENCH_MODELS = Path(__file__).resolve().parent.parent / "bench" / "models.py"


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory) -> Path:
    """The model written once for this module."""
    spec = importlib.util.spec_from_file_location("bench_models", BENCH_MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.save_efficientnet_lite0_like(tmp_path_factory.mktemp("effnet") / "effnet.onnx")


def test_layers_and_macs(onnx_path: Path) -> None:
    graph = load_model([str(onnx_path)])
    types = [layer.type for layer in graph.layers]
    assert types.count("ConvolutionDepthWise") == 16 and types.count("Convolution") == 1 + 15 + 16 + 1
    assert types.count("BinaryOp") == 9  # residual Adds
    infer_shapes(graph)
    macs = sum(graph_macs(graph).values())
    assert 375e6 <= macs <= 395e6, macs


def test_fp32_matches_onnxruntime(onnx_path: Path) -> None:
    graph = load_model([str(onnx_path)])
    assert graph.inputs == ["data"] and graph.outputs == ["prob"]
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = session.run(["prob"], {"data": x})[0].reshape(-1)
    got = Interpreter(graph).run({"data": x}, ["prob"])["prob"].reshape(-1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    assert got.argmax() == want.argmax()
