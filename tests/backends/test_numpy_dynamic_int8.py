"""The numpy simulation of ncnn2int8's weight-only int8 layers (RNN, LSTM, GRU, Gemm, MultiHeadAttention,
SDPA) against the real runtime, on drawn sizes: directions, projections, sequence lengths of 1, masks,
grouped keys, transposed and constant operands, all-zero inputs (whose on-the-fly scale would be infinite)."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Graph
from ncnnc.plugins.quantizer import quantize

CASES = range(12)


def _assert_simulated(graph: Graph, inputs: dict[str, np.ndarray], name: str) -> None:
    """The weight-only int8 model's output: the simulation equals the runtime within float32 rounding, and
    int8 moved it away from fp32 (the int8 path ran)."""
    q = quantize(graph).graph
    assert q.layer(name).p("int8_scale_term") == 2
    real = run_graph(q, inputs, [name])[name]
    simulated = Interpreter(q).run({k: v[None] for k, v in inputs.items()}, [name])[name][0].reshape(real.shape)
    scale = max(1.0, float(np.abs(real).max()))
    np.testing.assert_allclose(simulated, real, rtol=0, atol=2e-6 * scale)
    if any(np.abs(v).max() > 0 for v in inputs.values()):
        fp32 = run_graph(graph, inputs, [name])[name]
        assert np.abs(fp32 - real).max() > 1e-5 * scale


@pytest.mark.parametrize("seed", CASES)
def test_recurrent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    typ = ("RNN", "LSTM", "GRU")[seed % 3]
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[typ]
    num_output, size, steps = int(rng.integers(1, 40)), int(rng.integers(1, 50)), int(rng.integers(1, 12))
    direction = seed % 3 if seed > 2 else 2
    hidden = int(rng.integers(1, 40)) if typ == "LSTM" and seed % 2 else num_output
    nd = 2 if direction == 2 else 1
    b = GraphBuilder()
    x = b.input("data", (steps, size))
    params = {"num_output": num_output, "weight_data_size": nd * hidden * gates * size, "direction": direction}
    weights = {"weight_xc": rng.uniform(-0.5, 0.5, nd * hidden * gates * size),
               "bias_c": rng.uniform(-0.5, 0.5, nd * hidden * (4 if gates > 1 else 1)),
               "weight_hc": rng.uniform(-0.5, 0.5, nd * hidden * gates * num_output)}
    if hidden != num_output:
        params["hidden_size"] = hidden
        weights["weight_hr"] = rng.uniform(-0.5, 0.5, nd * num_output * hidden)
    b.layer(typ, [x], params, weights, name="rnn")
    data = rng.uniform(-2, 2, (steps, size)).astype(np.float32)
    data[int(rng.integers(0, steps))] = 0  # one step of zeros
    if seed == 5:
        data[:] = 0
    _assert_simulated(b.build(), {"data": data}, "rnn")


@pytest.mark.parametrize("seed", CASES)
def test_gemm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n, k = (int(v) for v in rng.integers(1, 30, 3))
    b = GraphBuilder()
    if seed % 3 == 0:  # constant B, maybe stored transposed
        b_data = rng.normal(0, 1, (n, k) if seed % 2 else (k, n)).astype(np.float32)
        b.layer("Gemm", [b.input("in0", (m, k))], {"constantB": 1, "constantN": n, "constantK": k,
                                                   "transB": seed % 2, "alpha": 0.7}, {"B_data": b_data}, name="op")
        inputs = {"in0": rng.normal(0, 1, (m, k)).astype(np.float32)}
    elif seed % 3 == 1:  # both operands inputs, A transposed
        b.layer("Gemm", [b.input("in0", (k, m)), b.input("in1", (k, n))], {"transA": 1, "beta": 0.5}, {}, name="op")
        inputs = {"in0": rng.normal(0, 1, (k, m)).astype(np.float32),
                  "in1": rng.normal(0, 1, (k, n)).astype(np.float32)}
    else:  # constant A and C
        params = {"constantA": 1, "constantM": m, "constantK": k, "transB": 1, "constantC": 1,
                  "constant_broadcast_type_C": 1, "constantN": n}
        b.layer("Gemm", [b.input("in0", (n, k))], params,
                {"A_data": rng.normal(0, 1, (m, k)), "C_data": rng.normal(0, 1, (m,))}, name="op")
        inputs = {"in0": rng.normal(0, 1, (n, k)).astype(np.float32)}
    if seed == 6:
        inputs["in0"][:] = 0
    _assert_simulated(b.build(), inputs, "op")


@pytest.mark.parametrize("seed", CASES)
def test_multiheadattention(seed: int) -> None:
    rng = np.random.default_rng(seed)
    heads = int(rng.integers(1, 5))
    e = heads * int(rng.integers(1, 6))
    qdim, kdim, vdim = (int(v) for v in rng.integers(1, 20, 3))
    src, dst = (1, int(rng.integers(1, 12))) if seed == 0 else (int(v) for v in rng.integers(1, 12, 2))
    mask = seed % 2
    weights = {}
    for name, shape in {"q": (e, qdim), "k": (e, kdim), "v": (e, vdim), "out": (qdim, e)}.items():
        weights[f"{name}_weight"] = rng.normal(0, 0.3, shape)
        weights[f"{name}_bias"] = rng.normal(0, 0.3, shape[0])
    b = GraphBuilder()
    shapes = [(src, qdim), (dst, kdim), (dst, vdim)] + ([(src, dst)] if mask else [])  # the mask: a row per query
    inputs = {f"in{i}": rng.normal(0, 1, shape).astype(np.float32) for i, shape in enumerate(shapes)}
    ins = [b.input(name, a.shape) for name, a in inputs.items()]
    b.layer("MultiHeadAttention", ins, {"embed_dim": e, "num_heads": heads, "weight_data_size": e * qdim,
                                        "kdim": kdim, "vdim": vdim, "attn_mask": mask}, weights, name="op")
    _assert_simulated(b.build(), inputs, "op")


@pytest.mark.parametrize("seed", CASES)
def test_sdpa(seed: int) -> None:
    rng = np.random.default_rng(seed)
    heads = int(rng.integers(1, 5))
    groups = heads if seed % 2 else 1
    src, dst, d, dv = (int(v) for v in rng.integers(1, 16, 4))
    inputs = {"in0": rng.normal(0, 1, (heads, src, d)), "in1": rng.normal(0, 1, (groups, dst, d)),
              "in2": rng.normal(0, 1, (groups, dst, dv))}
    inputs = {k: v.astype(np.float32) for k, v in inputs.items()}
    b = GraphBuilder()
    ins = [b.input(name, a.shape) for name, a in inputs.items()]
    b.layer("SDPA", ins, {"scale": 0.0 if seed % 3 else 0.3}, {}, name="op")
    _assert_simulated(b.build(), inputs, "op")
