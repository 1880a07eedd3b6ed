"""Param value forms of ncnn's parser beyond numbers: strings (quoted, may hold spaces; or starting with
a letter) and new-style arrays (``id=v0,v1`` without the -233xx id)."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import param_bin, save
from ncnnc.frontends import ncnn as ncnn_frontend
from ncnnc.frontends.ncnn import parse_param, parse_param_bin

PARAM = """7767517
4 5
Input    data   0 1 data 0=8 1=6 2=4
Slice    slice  1 2 data a b 0=1,-233 1=0
ReLU     relu   1 1 a r 0=0.5 5="a note with spaces" 7=word
Reshape  flat   1 1 b out 0=-1 6="0w,0h,0c"
"""


def test_strings_and_new_style_arrays_parse():
    graph = parse_param(PARAM)
    assert graph.layer("slice").params.values == {0: [1, -233], 1: 0}
    assert graph.layer("relu").params.values == {0: 0.5, 5: "a note with spaces", 7: "word"}
    assert graph.layer("flat").params[6] == "0w,0h,0c"
    again = parse_param_bin(param_bin(graph))
    assert [layer.params.values for layer in again.layers] == [layer.params.values for layer in graph.layers]


def test_rewritten_model_runs_identically(tmp_path):
    (tmp_path / "m.param").write_text(PARAM)
    (tmp_path / "m.bin").write_bytes(b"")
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(np.float32)
    ref = RuntimeNet(tmp_path / "m.param", tmp_path / "m.bin").run({"data": x}, ["r", "out"])
    graph = ncnn_frontend.load(tmp_path / "m.param", tmp_path / "m.bin")
    for name in ("o.param", "o.param.bin"):
        save(graph, tmp_path / name, tmp_path / "o.bin")
    got = RuntimeNet(tmp_path / "o.param", tmp_path / "o.bin").run({"data": x}, ["r", "out"])
    binary = RuntimeNet(tmp_path / "o.param.bin", tmp_path / "o.bin").run({0: x}, [3, 4])  # blobs by index
    for key, index in (("r", 3), ("out", 4)):
        np.testing.assert_array_equal(got[key], ref[key])
        np.testing.assert_array_equal(binary[index], ref[key])
    np.testing.assert_array_equal(ref["r"], np.where(x[:1] > 0, x[:1], 0.5 * x[:1]))


def test_reshape_expression_is_evaluated_as_the_runtime_does(tmp_path):
    """Reshape's 6= expression (here "0w,0h,0c") sets the shape, not 0=/1=/2=: shape inference and the
    numpy backend give the runtime's blob."""
    from ncnnc.backends.numpy import Interpreter
    from ncnnc.core.shapes import infer_shapes

    (tmp_path / "m.param").write_text(PARAM)
    (tmp_path / "m.bin").write_bytes(b"")
    x = np.random.default_rng(1).standard_normal((4, 6, 8)).astype(np.float32)
    ref = RuntimeNet(tmp_path / "m.param", tmp_path / "m.bin").run({"data": x}, ["out"])["out"]
    graph = parse_param(PARAM)
    assert infer_shapes(graph, {"data": (4, 6, 8)})["out"] == ref.shape == (3, 6, 8)
    np.testing.assert_array_equal(Interpreter(graph).run({"data": x[None]}, ["out"])["out"][0], ref)
