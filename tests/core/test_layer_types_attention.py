"""Schemas of Gemm, MultiHeadAttention and SDPA: ncnn's type indices, models written with them
load in the real runtime (text and binary .param) and read back identically."""

from __future__ import annotations

import ncnn
import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import bin_bytes, save
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import UnsupportedError
from ncnnc.core.ir import Weight
from ncnnc.core.layer_type_index import LAYER_TYPE_ORDER
from ncnnc.core.params import ParamDict, get_schema
from ncnnc.frontends.ncnn import load


def test_type_indices_match_the_runtime():
    assert [ncnn.layer_to_index(name) for name in LAYER_TYPE_ORDER] == list(range(len(LAYER_TYPE_ORDER)))
    assert LAYER_TYPE_ORDER.index("SDPA") == 108


def test_defaults():
    gemm = ParamDict("Gemm")
    assert (gemm["alpha"], gemm["beta"], gemm["transB"], gemm["int8_scale_term"]) == (1.0, 1.0, 0, 0)
    mha = ParamDict("MultiHeadAttention", {0: 16, 3: 4})
    assert (mha["num_heads"], mha["kdim"], mha["vdim"]) == (1, 4, 16)
    assert ParamDict("SDPA")["scale"] == 0.0


def _model():
    """Gemm (constant A and C) -> MultiHeadAttention -> Reshape -> SDPA with a mask, all weights random."""
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("data", (6, 8))
    g = b.layer("Gemm", [x], {"alpha": 0.5, "constantA": 1, "constantC": 1, "constantM": 4, "constantN": 8,
                              "constantK": 6, "constant_broadcast_type_C": 4},
                {"A_data": rng.normal(0, 1, (4, 6)), "C_data": rng.normal(0, 1, (1, 8))}, name="gemm")
    weights = {f"{p}_{kind}": rng.normal(0, 0.3, (8, 8) if kind == "weight" else 8)
               for p in ("q", "k", "v", "out") for kind in ("weight", "bias")}
    m = b.layer("MultiHeadAttention", [g], {"embed_dim": 8, "num_heads": 2, "weight_data_size": 64}, weights,
                name="mha")
    r = b.layer("Reshape", [m], {"w": 4, "h": 4, "c": 2}, name="heads")
    mask = b.input("mask", (4, 4))
    b.layer("SDPA", [r, r, r, mask], {"attn_mask": 1, "scale": 0.25}, name="sdpa")
    return b.build()


@pytest.mark.parametrize("suffix", [".param", ".param.bin"])
def test_runtime_loads_and_reads_back(tmp_path, suffix):
    graph = _model()
    param, binf = tmp_path / f"m{suffix}", tmp_path / "m.bin"
    save(graph, param, binf)
    back = load(param, binf)
    assert [(la.type, la.params.values) for la in back.layers] == [(la.type, la.params.values) for la in graph.layers]
    assert bin_bytes(back) == bin_bytes(graph)
    rng = np.random.default_rng(1)
    inputs = {"data": rng.normal(0, 1, (6, 8)).astype(np.float32), "mask": rng.normal(0, 1, (4, 4)).astype(np.float32)}
    net = RuntimeNet(param, binf)
    if suffix == ".param.bin":  # ncnn2mem's form names blobs by index: data 0, mask 4, sdpa 5
        out = net.run({0: inputs["data"], 4: inputs["mask"]}, [5])[5]
    else:
        out = net.run(inputs, ["sdpa"])["sdpa"]
    text = RuntimeNet(*_saved(graph, tmp_path)).run(inputs, ["sdpa"])["sdpa"]
    assert out.shape == (2, 4, 4) and np.array_equal(out, text)


def _saved(graph, tmp_path):
    param, binf = tmp_path / "text.param", tmp_path / "text.bin"
    save(graph, param, binf)
    return param, binf


def test_int8_weights_sizes():
    gemm = ParamDict("Gemm", {2: 1, 4: 1, 5: 1, 7: 3, 8: 5, 9: 4, 18: 2})
    assert [(s.name, s.count, s.load_type, s.logical_shape()) for s in get_schema("Gemm").weight_specs(gemm)] == [
        ("A_data", 12, 0, (4, 3)), ("B_data", 20, 0, (4, 5)), ("A_data_int8_scales", 3, 1, (3,)),
        ("B_data_int8_scale", 1, 1, (1,))]
    mha = ParamDict("MultiHeadAttention", {0: 8, 2: 48, 3: 4, 4: 5, 18: 2})
    specs = get_schema("MultiHeadAttention").weight_specs(mha)
    assert [(s.name, s.logical_shape()) for s in specs] == [
        ("q_weight", (8, 6)), ("q_bias", (8,)), ("k_weight", (8, 4)), ("k_bias", (8,)), ("v_weight", (8, 5)),
        ("v_bias", (8,)), ("out_weight", (6, 8)), ("out_bias", (6,)), ("q_weight_int8_scales", (8,)),
        ("k_weight_int8_scales", (8,)), ("v_weight_int8_scales", (8,)), ("out_weight_int8_scale", (1,))]


def test_int8_gemm_sizes_in_the_runtime(tmp_path):
    """An int8 Gemm followed by MemoryData: the MemoryData reads back intact only if the Gemm consumed
    exactly the bytes the schema says (int8 A and B, then the raw scales)."""
    rng = np.random.default_rng(2)
    b = GraphBuilder()
    x = b.input("data", (4, 5))
    b.layer("Gemm", [x], {"transA": 1, "constantA": 1, "constantB": 1, "constantM": 3, "constantN": 5,
                          "constantK": 4, "int8_scale_term": 2},
            {"A_data": Weight(rng.integers(-127, 128, (4, 3)).astype(np.int8), "int8"),
             "B_data": Weight(rng.integers(-127, 128, (4, 5)).astype(np.int8), "int8"),
             "A_data_int8_scales": np.full(3, 50.0), "B_data_int8_scale": [60.0]}, name="gemm")
    data = rng.normal(0, 1, 9).astype(np.float32)
    b.layer("MemoryData", [], {"w": 9}, {"data": data}, name="md")
    param, binf = _saved(b.build(), tmp_path)
    out = RuntimeNet(param, binf).run({"data": np.zeros((4, 5), np.float32)}, ["md", "gemm"])
    assert np.array_equal(out["md"], data) and out["gemm"].shape == (3, 5)


@pytest.mark.parametrize("ltype,params", [("Gemm", {5: 1, 8: 4, 9: 4, 3: 1, 18: 800}),
                                          ("MultiHeadAttention", {0: 8, 2: 64, 18: 401})])
def test_block_quantized_weights_are_refused(ltype, params):
    with pytest.raises(UnsupportedError, match=f"{ltype} 18={params[18]} is not supported"):
        get_schema(ltype).weight_specs(ParamDict(ltype, params))
