"""ONNX frontend breadth through ``ncnnc convert``: old opsets upgraded, initializers listed as inputs,
the folding limit, and the fixed-batch rule (converted at batch 1 with one stderr note, or refused
with the node named), each checked against onnxruntime and the real ncnn runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.core.cli import main
from ncnnc.frontends.onnx_fold import MAX_FOLDED_ELEMENTS

RNG = np.random.default_rng(16)


def _model(nodes, inputs: dict, inits: dict, opset: int, ir: int, inits_as_inputs: bool = False) -> onnx.ModelProto:
    vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()]
    if inits_as_inputs:
        vis += [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(v.shape)) for n, v in inits.items()]
    graph = helper.make_graph(nodes, "g", vis, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    return model


def _convert(tmp_path, model: onnx.ModelProto, capsys) -> tuple[int, list[str]]:
    onnx.save(model, str(tmp_path / "m.onnx"))
    status = main(["convert", str(tmp_path / "m.onnx"), str(tmp_path / "m.param"), str(tmp_path / "m.bin")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err.strip().splitlines()


def _compare_first_item(tmp_path, inputs: dict[str, np.ndarray]) -> None:
    want = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(["y"], inputs)[0]
    got = RuntimeNet(tmp_path / "m.param", tmp_path / "m.bin").run({k: v[0] for k, v in inputs.items()}, ["y"])["y"]
    np.testing.assert_allclose(got.reshape(want[0].shape), want[0], rtol=1e-4, atol=1e-5)


def _conv_net(batch: int, opset: int = 13, ir: int = 8, inits_as_inputs: bool = False) -> onnx.ModelProto:
    inits = {"w": RNG.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32), "b": RNG.uniform(-1, 1, 4).astype(np.float32),
             "fc": RNG.uniform(-1, 1, (5, 4)).astype(np.float32), "fcb": RNG.uniform(-1, 1, 5).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    return _model(nodes, {"x": [batch, 3, 8, 8]}, inits, opset, ir, inits_as_inputs)


def test_old_opset_is_upgraded(tmp_path, capsys):
    status, err = _convert(tmp_path, _conv_net(1, opset=8, ir=3, inits_as_inputs=True), capsys)
    assert status == 0 and err == []
    _compare_first_item(tmp_path, {"x": RNG.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)})


def test_initializers_listed_as_inputs_are_constants(tmp_path, capsys):
    status, err = _convert(tmp_path, _conv_net(1, opset=13, ir=6, inits_as_inputs=True), capsys)
    assert status == 0 and err == []
    assert (tmp_path / "m.param").read_text().count("Input ") == 1  # the weights are not inputs
    _compare_first_item(tmp_path, {"x": RNG.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)})


def test_fixed_batch_converts_at_batch_one_with_a_note(tmp_path, capsys):
    status, err = _convert(tmp_path, _conv_net(4), capsys)
    assert status == 0
    assert len(err) == 1 and "fixed batch 4 is converted at batch 1" in err[0] and "m.onnx" in err[0]
    _compare_first_item(tmp_path, {"x": RNG.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)})


def _refused(tmp_path, capsys, model: onnx.ModelProto) -> str:
    status, err = _convert(tmp_path, model, capsys)
    assert status == 2 and len(err) == 1, err
    assert not (tmp_path / "m.param").exists() and not (tmp_path / "m.bin").exists()
    return err[0]


def test_batch_mixing_softmax_is_refused_naming_the_node(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Softmax", ["r"], ["y"], axis=0, name="mix")]
    line = _refused(tmp_path, capsys, _model(nodes, {"x": [3, 5]}, {}, 13, 8))
    assert "node mix (Softmax)" in line and "fixed batch 3" in line and "batch axis" in line


def test_batch_mixing_reshape_is_refused_naming_the_node(tmp_path, capsys):
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="swap")]
    line = _refused(tmp_path, capsys, _model(nodes, {"x": [2, 6]}, {"s": np.array([6, 2], np.int64)}, 13, 8))
    assert "node swap (Reshape)" in line and "mixes batch items" in line


def test_batch_as_right_matmul_operand_is_refused(tmp_path, capsys):
    nodes = [helper.make_node("MatMul", ["a", "x"], ["y"], name="mm")]
    inits = {"a": RNG.uniform(-1, 1, (3, 2)).astype(np.float32)}
    line = _refused(tmp_path, capsys, _model(nodes, {"x": [2, 4]}, inits, 13, 8))
    assert "node mm (MatMul)" in line


def test_folding_limit(tmp_path, capsys):
    big = MAX_FOLDED_ELEMENTS + 1
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["k"], name="huge"),
             helper.make_node("ReduceSum", ["k"], ["s"], keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"])]
    line = _refused(tmp_path, capsys, _model(nodes, {"x": [1, 4]}, {"shape": np.array([big], np.int64)}, 13, 8))
    assert "node huge (ConstantOfShape)" in line and "folding limit" in line
