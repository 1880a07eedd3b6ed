"""Weight-only int8 quantization of Gemm, MultiHeadAttention and SDPA: the model ncnn2int8 writes
(params, int8 weights, scales, storage, byte for byte), its output in the real ncnn runtime, and the numpy
int8 simulation of it."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.ncnn_writer import bin_bytes, param_text
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph
from ncnnc.core.table import CalibrationTable
from ncnnc.plugins.quantizer import quantize

M, N, K = 6, 9, 24
INT8_TAG, FP16_TAG = 0x000D4B38, 0x01306B47


def _int8(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """ncnn2int8's rounding: scale in float32, round half away from zero, saturate to +-127."""
    v = values.astype(np.float32) * scales.astype(np.float32)
    return np.clip(np.trunc(v + np.copysign(np.float32(0.5), v)), -127, 127).astype(np.int8)


def _row_scales(w: np.ndarray) -> np.ndarray:
    return (np.float32(127) / np.abs(w.astype(np.float32)).max(axis=1)).astype(np.float32)


def _tagged_int8(q: np.ndarray) -> bytes:
    raw = q.tobytes()
    return struct.pack("<I", INT8_TAG) + raw + b"\0" * (-len(raw) % 4)


def _tagged_fp16(w: np.ndarray) -> bytes:
    raw = w.astype(np.float16).tobytes()
    return struct.pack("<I", FP16_TAG) + raw + b"\0" * (-len(raw) % 4)


def _raw(*arrays: np.ndarray) -> bytes:
    return b"".join(np.asarray(a, "<f4").tobytes() for a in arrays)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _one_layer(ltype: str, shapes: list[tuple[int, ...]], params: dict, weights: dict) -> Graph:
    b = GraphBuilder()
    ins = [b.input(f"in{i}", s) for i, s in enumerate(shapes)]
    b.layer(ltype, ins, params, weights, name="op")
    return b.build()


def _check_simulation(quantized: Graph, inputs: dict[str, np.ndarray], runtime: np.ndarray) -> None:
    """The numpy int8 simulation (activations quantized on the fly, as ncnn does) gives the runtime's
    int8 output within float32 rounding; int8 moved it by 1e-2 or more."""
    simulated = Interpreter(quantized).run({k: v[None] for k, v in inputs.items()}, ["op"])["op"][0]
    np.testing.assert_allclose(simulated.reshape(runtime.shape), runtime, rtol=0,
                               atol=1e-6 * max(1.0, float(np.abs(runtime).max())))


def _check_runtime(graph: Graph, quantized: Graph, seed: int) -> None:
    """int8 output close to fp32 (cosine > 0.99), and not equal to it: the int8 path ran; the numpy
    simulation gives the runtime's int8 output."""
    rng = np.random.default_rng(seed)
    inputs = {layer.outputs[0]: rng.normal(0, 1, [layer.p(k) for k in ("c", "h", "w") if layer.p(k)])
              .astype(np.float32) for layer in graph.layers if layer.type == "Input"}
    fp32 = run_graph(graph, inputs, ["op"])["op"]
    int8 = run_graph(quantized, inputs, ["op"])["op"]
    assert int8.shape == fp32.shape
    assert _cos(fp32, int8) > 0.99
    assert not np.allclose(fp32, int8, rtol=0, atol=1e-5)
    _check_simulation(quantized, inputs, int8)


def _last_line(graph: Graph) -> str:
    return " ".join(param_text(graph).splitlines()[-1].split())


def test_gemm_constant_b_is_transposed_and_gets_one_scale():
    rng = np.random.default_rng(0)
    b = rng.normal(0, 1, (K, N)).astype(np.float32)
    graph = _one_layer("Gemm", [(M, K)], {"constantB": 1, "constantN": N, "constantK": K}, {"B_data": b})
    result = quantize(graph)
    q = result.graph
    assert result.report.dynamic == ["op"] and not result.report.quantized
    assert _last_line(q) == f"Gemm op 1 1 in0 op 3=1 5=1 8={N} 9={K} 18=2"
    scale = np.float32(127) / np.abs(b).max()
    assert bin_bytes(q) == _tagged_int8(_int8(b.T, scale)) + _raw([scale])
    _check_runtime(graph, q, 1)


def test_gemm_constant_a_c_and_transposed_b():
    """A stored transposed is made row-major (2=1 goes away) with one scale per row; C stays float
    (fp16); a B already transposed keeps 3=1 and gets one scale from all of it."""
    rng = np.random.default_rng(2)
    a_t = rng.normal(0, 1, (K, M)).astype(np.float32)
    b_t = rng.normal(0, 1, (N, K)).astype(np.float32)
    b_t[N - 1] *= 4  # the largest values are not in B's first row
    c = rng.normal(0, 1, (1, N)).astype(np.float32)
    params = {"alpha": 0.5, "transA": 1, "transB": 1, "constantA": 1, "constantB": 1, "constantC": 1,
              "constantM": M, "constantN": N, "constantK": K, "constant_broadcast_type_C": 4}
    graph = _one_layer("Gemm", [], params, {"A_data": a_t, "B_data": b_t, "C_data": c})
    q = quantize(graph).graph
    assert _last_line(q) == (f"Gemm op 0 1 op 0=0.5 3=1 4=1 5=1 6=1 7={M} 8={N} 9={K} 10=4 18=2")
    a_scales = _row_scales(a_t.T)
    b_scale = np.float32(127) / np.abs(b_t).max()
    assert bin_bytes(q) == (_tagged_int8(_int8(a_t.T, a_scales[:, None])) + _tagged_int8(_int8(b_t, b_scale))
                            + _tagged_fp16(c) + _raw(a_scales, [b_scale]))
    out = run_graph(q, {}, ["op"])["op"]
    want = 0.5 * (a_t.T.astype(np.float64) @ b_t.T + c)
    assert _cos(out, want) > 0.99 and not np.allclose(out, want, rtol=0, atol=1e-5)
    _check_simulation(q, {}, out)


def test_gemm_without_constants_only_gets_the_term():
    graph = _one_layer("Gemm", [(M, K), (K, N)], {}, {})
    q = quantize(graph).graph
    assert _last_line(q) == "Gemm op 2 1 in0 in1 op 18=2" and bin_bytes(q) == b""
    _check_runtime(graph, q, 3)


def _mha(rng: np.random.Generator, e: int = 16, qdim: int = 12, kdim: int = 10, vdim: int = 8) -> Graph:
    shapes = {"q": (e, qdim), "k": (e, kdim), "v": (e, vdim), "out": (qdim, e)}
    weights = {}
    for name, shape in shapes.items():
        weights[f"{name}_weight"] = rng.normal(0, 0.3, shape).astype(np.float32)
        weights[f"{name}_bias"] = rng.normal(0, 0.3, shape[0]).astype(np.float32)
    params = {"embed_dim": e, "num_heads": 4, "weight_data_size": e * qdim, "kdim": kdim, "vdim": vdim,
              "attn_mask": 1}
    return _one_layer("MultiHeadAttention", [(9, qdim), (11, kdim), (11, vdim), (9, 11)], params, weights)


def test_multiheadattention():
    graph = _mha(np.random.default_rng(4))
    result = quantize(graph)
    q = result.graph
    assert result.report.dynamic == ["op"]
    assert _last_line(q) == "MultiHeadAttention op 4 1 in0 in1 in2 in3 op 0=16 1=4 2=192 3=10 4=8 5=1 18=2"
    layer = graph.layer("op")
    want, scales = b"", []
    for name in ("q", "k", "v", "out"):
        w = layer.weight(f"{name}_weight")
        s = _row_scales(w) if name != "out" else np.float32(127) / np.abs(w).max(keepdims=True)
        want += _tagged_int8(_int8(w, s[:, None] if name != "out" else s)) + _raw(layer.weight(f"{name}_bias"))
        scales.append(s)
    assert bin_bytes(q) == want + _raw(*scales)
    _check_runtime(graph, q, 5)


def test_sdpa():
    graph = _one_layer("SDPA", [(4, 9, 16), (2, 11, 16), (2, 11, 8)], {"scale": 0.3}, {})
    result = quantize(graph)
    assert result.report.dynamic == ["op"]
    assert _last_line(result.graph) == "SDPA op 3 1 in0 in1 in2 op 6=0.3 18=2"
    _check_runtime(graph, result.graph, 6)


def test_kept_fp32_and_bad_input():
    rng = np.random.default_rng(7)
    graph = _one_layer("Gemm", [(M, K)], {"constantB": 1, "constantN": N, "constantK": K},
                       {"B_data": rng.normal(0, 1, (K, N))})
    result = quantize(graph, fp32_layers=["op"])
    layer = result.graph.layer("op")
    assert result.report.kept_fp32 == {"op": "asked to stay fp32"}
    assert layer.p("int8_scale_term") == 0 and layer.weights["B_data"].storage == "fp16"
    with pytest.raises(NcnncError, match="layer op: the table has scales for a Gemm layer, which has no int8 form"):
        quantize(graph, CalibrationTable(input_scales={"op": 10.0}))
    with pytest.raises(NcnncError, match="already an int8 model"):
        quantize(quantize(_one_layer("SDPA", [(5, 4), (6, 4), (6, 3)], {}, {})).graph)
