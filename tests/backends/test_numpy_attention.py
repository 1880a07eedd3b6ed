"""Gemm, MultiHeadAttention and SDPA: the numpy backend's ops and the shape rules against the real
ncnn runtime, on one-layer models with random weights and inputs."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import UnsupportedError
from ncnnc.core.ir import Graph
from ncnnc.core.shapes import infer_shapes

M, N, K = 5, 7, 6


def _graph(ltype: str, shapes: list[tuple[int, ...]], params: dict, weights: dict | None = None,
           outputs: int = 1) -> Graph:
    b = GraphBuilder()
    ins = [b.input(f"in{i}", s) for i, s in enumerate(shapes)]
    b.layer(ltype, ins, params, weights or {}, outputs=outputs, name="op")
    return b.build()


def _inputs(graph: Graph, seed: int, batch: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {layer.outputs[0]: rng.normal(0, 1, (batch, *[layer.p(k) for k in ("c", "h", "w") if layer.p(k)]))
            .astype(np.float32) for layer in graph.layers if layer.type == "Input"}


def _compare(graph: Graph, seed: int = 0) -> None:
    """Each sample of a batch of two through the runtime; shapes from infer_shapes, values from the
    interpreter (the whole batch at once) must match it."""
    batch = _inputs(graph, seed)
    outputs = graph.outputs
    ours = Interpreter(graph).run(batch, outputs)
    shapes = infer_shapes(graph)
    for i in range(2):
        theirs = run_graph(graph, {k: v[i] for k, v in batch.items()}, outputs)
        for name in outputs:
            want = theirs[name]
            assert shapes[name] == want.shape, f"{name}: shape rule {shapes[name]} vs ncnn {want.shape}"
            assert ours[name][i].shape == want.shape
            np.testing.assert_allclose(ours[name][i], want, rtol=1e-5, atol=2e-5 * np.abs(want).max())


def _w(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, shape).astype(np.float32)


GEMM_CASES = {
    "inputs": ([(M, K), (K, N)], {}, {}),
    "transposed inputs": ([(K, M), (N, K)], {"transA": 1, "transB": 1}, {}),
    "constant B": ([(M, K)], {"constantB": 1, "constantN": N, "constantK": K}, {"B_data": _w(1, K, N)}),
    "constant B^T": ([(M, K)], {"transB": 1, "constantB": 1, "constantN": N, "constantK": K},
                     {"B_data": _w(2, N, K)}),
    "constant A^T": ([(K, N)], {"transA": 1, "constantA": 1, "constantM": M, "constantK": K},
                     {"A_data": _w(3, K, M)}),
    "C input MxN": ([(M, K), (K, N), (M, N)], {"alpha": 0.5, "beta": 2.0}, {}),
    "C input N": ([(M, K), (K, N), (N,)], {}, {}),
    "C input M": ([(M, K), (K, N), (M,)], {"beta": -1.0}, {}),
    "C input scalar": ([(M, K), (K, N), (1,)], {}, {}),
    "C input 1xN after constant B": ([(M, K), (1, N)], {"constantB": 1, "constantN": N, "constantK": K},
                                     {"B_data": _w(4, K, N)}),
    "output transposed": ([(M, K), (K, N)], {"output_transpose": 1}, {}),
    "output N1M": ([(M, K), (K, N)], {"output_N1M": 1}, {}),
    "output N1M transposed": ([(M, K), (K, N)], {"output_N1M": 1, "output_transpose": 1}, {}),
    "1-D A": ([(K,), (K, N)], {}, {}),
    "3-D A (M, 1, K)": ([(M, 1, K), (K, N)], {}, {}),
}


@pytest.mark.parametrize("case", list(GEMM_CASES))
def test_gemm(case):
    shapes, params, weights = GEMM_CASES[case]
    _compare(_graph("Gemm", shapes, params, weights))


@pytest.mark.parametrize("bt,c_shape", [(0, (1,)), (1, (M,)), (2, (M, 1)), (3, (M, N)), (4, (1, N))])
def test_gemm_constant_c(bt, c_shape):
    params = {"alpha": 0.5, "beta": 2.0, "constantB": 1, "constantC": 1, "constantM": M, "constantN": N,
              "constantK": K, "constant_broadcast_type_C": bt}
    _compare(_graph("Gemm", [(M, K)], params, {"B_data": _w(5, K, N), "C_data": _w(6, *c_shape)}))


def test_gemm_all_constant():
    params = {"constantA": 1, "constantB": 1, "constantM": M, "constantN": N, "constantK": K}
    graph = _graph("Gemm", [(M, N)], params, {"A_data": _w(7, M, K), "B_data": _w(8, K, N)})  # the input is C
    _compare(graph)


def _mha_weights(seed: int, e: int, qdim: int, kdim: int, vdim: int) -> dict[str, np.ndarray]:
    shapes = {"q_weight": (e, qdim), "q_bias": (e,), "k_weight": (e, kdim), "k_bias": (e,),
              "v_weight": (e, vdim), "v_bias": (e,), "out_weight": (qdim, e), "out_bias": (qdim,)}
    return {name: _w(seed + i, *shape) for i, (name, shape) in enumerate(shapes.items())}


MHA_CASES = {  # embed_dim, heads, qdim, kdim, vdim, input shapes, extra params
    "self": (8, 2, 8, 8, 8, [(5, 8)], {}),
    "cross k, v": (8, 2, 6, 4, 3, [(5, 6), (7, 4), (7, 3)], {}),
    "cross k = v": (12, 3, 6, 4, 4, [(5, 6), (7, 4)], {}),
    "scale": (12, 3, 12, 12, 12, [(5, 12)], {"scale": 0.7}),
    "2-D mask": (8, 2, 8, 8, 8, [(5, 8), (5, 5)], {"attn_mask": 1}),
    "3-D mask": (8, 2, 8, 4, 4, [(5, 8), (6, 4), (2, 5, 6)], {"attn_mask": 1}),
}


@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multiheadattention(case):
    e, heads, qdim, kdim, vdim, shapes, extra = MHA_CASES[case]
    params = {"embed_dim": e, "num_heads": heads, "weight_data_size": e * qdim, "kdim": kdim, "vdim": vdim,
              **extra}
    _compare(_graph("MultiHeadAttention", shapes, params, _mha_weights(10, e, qdim, kdim, vdim)))


@pytest.mark.parametrize("cross", [False, True])
def test_multiheadattention_kv_cache(cross):
    """Self-attention appends to the cache, cross-attention reads the cached keys and values only."""
    e, heads, past = 8, 2, 4
    shapes = [(3, e)] + ([(6, e)] if cross else []) + [(heads, past, e // heads)] * 2
    params = {"embed_dim": e, "num_heads": heads, "weight_data_size": e * e, "kv_cache": 1}
    _compare(_graph("MultiHeadAttention", shapes, params, _mha_weights(20, e, e, e, e), outputs=3))


SDPA_CASES = {
    "heads": ([(2, 5, 4), (2, 6, 4), (2, 6, 3)], {}),
    "grouped heads, scale": ([(4, 5, 4), (2, 6, 4), (2, 6, 3)], {"scale": 0.3}),
    "2-D": ([(5, 4), (6, 4), (6, 3)], {}),
    "2-D mask": ([(2, 5, 4), (2, 6, 4), (2, 6, 3), (5, 6)], {"attn_mask": 1}),
    "3-D mask": ([(2, 5, 4), (2, 6, 4), (2, 6, 3), (2, 5, 6)], {"attn_mask": 1}),
    "3-D mask of one head": ([(2, 5, 4), (2, 6, 4), (2, 6, 3), (1, 5, 6)], {"attn_mask": 1}),
}


@pytest.mark.parametrize("case", list(SDPA_CASES))
def test_sdpa(case):
    shapes, params = SDPA_CASES[case]
    _compare(_graph("SDPA", shapes, params))


def test_sdpa_kv_cache_shapes_and_unsupported_op():
    graph = _graph("SDPA", [(2, 3, 4), (2, 3, 4), (2, 3, 3), (2, 5, 4), (2, 5, 3)], {"kv_cache": 1}, outputs=3)
    batch = _inputs(graph, 0, batch=1)
    theirs = run_graph(graph, {k: v[0] for k, v in batch.items()}, graph.outputs)
    shapes = infer_shapes(graph)
    assert [shapes[b] for b in graph.outputs] == [theirs[b].shape for b in graph.outputs] == \
        [(2, 3, 3), (2, 8, 4), (2, 8, 3)]
    with pytest.raises(UnsupportedError, match="SDPA 7=kv_cache is not supported"):
        Interpreter(graph).run(batch)
