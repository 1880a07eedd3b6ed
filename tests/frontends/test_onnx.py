"""The ONNX frontend end to end: the shared SqueezeNet, shape-subgraph folding, the CLI and bad input."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from ncnnc.backends.ncnn_runtime import RuntimeNet, run_graph
from ncnnc.core.cli import main
from ncnnc.core.frontend import load_model
from ncnnc.frontends.onnx import load
from ncnnc.frontends.onnx_fold import fold
from ncnnc.frontends.onnx_model import fix_input_shapes, read_model

RNG = np.random.default_rng(7)


def _ncnn_input(path) -> np.ndarray:
    """A shared image as ncnn's SqueezeNet example feeds it: BGR, 227x227 ncnn resize, mean subtracted."""
    import ncnn

    bgr = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1])
    h, w = bgr.shape[:2]
    mat = ncnn.Mat.from_pixels_resize(bgr, ncnn.Mat.PixelType.PIXEL_BGR, w, h, 227, 227)
    mat.substract_mean_normalize([104.0, 117.0, 123.0], [])
    return np.array(mat, dtype=np.float32)


def test_squeezenet_matches_ncnn_and_onnxruntime(squeezenet_dir, image_paths, tmp_path):
    onnx_path = squeezenet_dir / "squeezenet_v1.1.onnx"
    graph = load_model([str(onnx_path)])
    assert graph.inputs == ["data"] and graph.outputs == ["prob"]
    assert [layer.type for layer in graph.layers].count("Convolution") == 26
    out_param, out_bin = tmp_path / "sq.param", tmp_path / "sq.bin"
    assert main(["convert", str(onnx_path), str(out_param), str(out_bin)]) == 0
    ours = RuntimeNet(out_param, out_bin)
    theirs = RuntimeNet(squeezenet_dir / "squeezenet_v1.1.param", squeezenet_dir / "squeezenet_v1.1.bin")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for path in image_paths[::125]:
        x = _ncnn_input(path)
        got = ours.run({"data": x}, ["prob"])["prob"].reshape(-1)
        want = theirs.run({"data": x}, ["prob"])["prob"].reshape(-1)
        ref = session.run(["prob"], {"data": x[None]})[0].reshape(-1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * want.max())
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.max())
        assert got.argmax() == want.argmax() == ref.argmax()


def _const(name: str, value, dtype=np.int64) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value, dtype), name))


def same_padding_model(opset: int = 18) -> onnx.ModelProto:
    """Conv with TF-style "same" padding computed from Shape at run time, BatchNormalization, ReLU,
    a mean over axes made by Range, and a flatten whose target shape is computed from Shape."""
    k, s, cin, cout = 3, 2, 3, 8
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        _const("two", 2.0, np.float32), _const("one_f", 1.0, np.float32), _const("k", float(k), np.float32),
        _const("zero_f", 0.0, np.float32), _const("i2", 2), _const("i3", 3), _const("two_i", 2),
        _const("n2", [2]), _const("n1", [1]),
        _const("ax0", [0]), _const("minus1", [-1]), _const("r0", 2), _const("r1", 4), _const("r2", 1),
    ]
    pads_begin, pads_end = [], []
    for dim, idx in (("h", "i2"), ("w", "i3")):
        nodes += [
            helper.make_node("Gather", ["shape", idx], [f"{dim}_i"], axis=0),
            helper.make_node("Cast", [f"{dim}_i"], [f"{dim}_f"], to=TensorProto.FLOAT),
            helper.make_node("Div", [f"{dim}_f", "two"], [f"{dim}_div"]),
            helper.make_node("Ceil", [f"{dim}_div"], [f"{dim}_out"]),
            helper.make_node("Sub", [f"{dim}_out", "one_f"], [f"{dim}_o1"]),
            helper.make_node("Mul", [f"{dim}_o1", "two"], [f"{dim}_o2"]),
            helper.make_node("Add", [f"{dim}_o2", "k"], [f"{dim}_o3"]),
            helper.make_node("Sub", [f"{dim}_o3", f"{dim}_f"], [f"{dim}_o4"]),
            helper.make_node("Max", [f"{dim}_o4", "zero_f"], [f"{dim}_tot_f"]),
            helper.make_node("Cast", [f"{dim}_tot_f"], [f"{dim}_tot"], to=TensorProto.INT64),
            helper.make_node("Div", [f"{dim}_tot", "two_i"], [f"{dim}_beg"]),
            helper.make_node("Sub", [f"{dim}_tot", f"{dim}_beg"], [f"{dim}_end"]),
        ]
        pads_begin.append(f"{dim}_beg")
        pads_end.append(f"{dim}_end")
    nodes += [
        helper.make_node("ConstantOfShape", ["n2"], ["zeros2"], value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Concat", ["zeros2", *pads_begin, "zeros2", *pads_end], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads"], ["xp"], mode="constant"),
        helper.make_node("Conv", ["xp", "w", "b"], ["conv"], kernel_shape=[k, k], strides=[s, s]),
        helper.make_node("BatchNormalization", ["conv", "sc", "bi", "mu", "var"], ["bn"], epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["relu"]),
        helper.make_node("Range", ["r0", "r1", "r2"], ["axes"]),
        helper.make_node("ReduceMean", ["relu", "axes"], ["gap"], keepdims=1),
        helper.make_node("Shape", ["gap"], ["gshape"]),
        helper.make_node("Slice", ["gshape", "ax0", "n1"], ["batch"]),
        helper.make_node("Concat", ["batch", "minus1"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["gap", "flat_shape"], ["y"]),
    ]
    # the exporter's scalar Gather gives 0-d values; Concat needs 1-D: unsqueeze the pad amounts
    fixed = []
    for node in nodes:
        if node.op_type == "Concat" and node.output[0] == "pads":
            for name in pads_begin + pads_end:
                fixed.append(helper.make_node("Unsqueeze", [name, "ax0"], [f"{name}_1d"]))
            node = helper.make_node("Concat", ["zeros2", *[f"{n}_1d" for n in pads_begin], "zeros2",
                                               *[f"{n}_1d" for n in pads_end]], ["pads"], axis=0)
        fixed.append(node)
    inits = {"w": RNG.uniform(-1, 1, (cout, cin, k, k)), "b": RNG.uniform(-1, 1, cout),
             "sc": RNG.uniform(0.5, 1.5, cout), "bi": RNG.uniform(-1, 1, cout), "mu": RNG.uniform(-1, 1, cout),
             "var": RNG.uniform(0.5, 2, cout)}
    graph = helper.make_graph(
        fixed, "same", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def test_same_padding_subgraphs_fold_away(tmp_path):
    path = tmp_path / "same.onnx"
    onnx.save(same_padding_model(), str(path))
    model = read_model(path)
    folded = fold(model, fix_input_shapes(model, str(path), "[12,9,3]"), 18, str(path))
    assert {"Shape", "Gather", "Cast", "Ceil", "Max", "ConstantOfShape", "Concat", "Range", "Slice",
            "Unsqueeze"} <= set(folded.folded)
    assert [n.op_type for n in folded.nodes] == ["Pad", "Conv", "BatchNormalization", "Relu", "ReduceMean",
                                                 "Reshape"]
    graph = load(path, shape="[12,9,3]")
    assert [layer.type for layer in graph.layers] == ["Input", "Padding", "Convolution", "BatchNorm", "ReLU",
                                                      "Reduction", "Reshape"]
    pad = graph.layers[1].params
    assert (pad[0], pad[1], pad[2], pad[3]) == (1, 1, 0, 1)  # H=9: 1+1, W=12: 0+1 for k=3, s=2
    x = RNG.uniform(-1, 1, (1, 3, 9, 12)).astype(np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    got = run_graph(graph, {"x": x[0]}, ["y"])["y"]
    np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=1e-4, atol=1e-5)


# -- the command line and bad input --------------------------------------------------------------
def _tiny_model(op: str = "Relu", shape=(1, 3, 4, 4), opset: int = 13, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], name="the_node", **attrs)
    graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _convert(tmp_path, model_path, *extra) -> tuple[int, list]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    rc = main(["convert", str(model_path), str(out / "o.param"), str(out / "o.bin"), *extra])
    return rc, sorted(p.name for p in out.iterdir())


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_convert_cli_writes_a_model_the_runtime_runs(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_tiny_model("LeakyRelu", alpha=0.2), str(path))
    rc, written = _convert(tmp_path, path)
    assert rc == 0 and written == ["o.bin", "o.param"]
    x = RNG.uniform(-1, 1, (3, 4, 4)).astype(np.float32)
    y = RuntimeNet(tmp_path / "out" / "o.param", tmp_path / "out" / "o.bin").run({"x": x}, ["y"])["y"]
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.2 * x), rtol=1e-6)


def test_not_a_model(tmp_path, capsys):
    path = tmp_path / "junk.onnx"
    path.write_text("this is a text file, not a protobuf model\n")
    rc, written = _convert(tmp_path, path)
    line = _one_error_line(capsys)
    assert rc == 2 and written == []
    assert "junk.onnx" in line and "not an ONNX model" in line


def test_unsupported_operator_names_op_and_node(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_tiny_model("Hardmax"), str(path))
    rc, written = _convert(tmp_path, path)
    line = _one_error_line(capsys)
    assert rc == 2 and written == []
    assert "unsupported operator Hardmax" in line and "the_node" in line and "m.onnx" in line


def test_dynamic_input_needs_shape(tmp_path, capsys):
    path = tmp_path / "dyn.onnx"
    onnx.save(_tiny_model("Sigmoid", shape=("N", 3, "H", "W")), str(path))
    rc, written = _convert(tmp_path, path)
    line = _one_error_line(capsys)
    assert rc == 2 and written == []
    assert "dynamic" in line and "shape=" in line and "input x" in line
    rc, written = _convert(tmp_path, path, "--shape", "[8,6,3]")
    assert rc == 0 and written == ["o.bin", "o.param"]
    assert "0=8 1=6 2=3" in (tmp_path / "out" / "o.param").read_text()


def test_shape_option_contradicting_a_fixed_input(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_tiny_model(), str(path))
    rc, _ = _convert(tmp_path, path, "--shape", "[5,5,3]")
    assert rc == 2 and "contradicts" in _one_error_line(capsys)


@pytest.mark.parametrize("opset", [22])  # opsets before 9 are upgraded: test_onnx_breadth.py
def test_opset_out_of_range(tmp_path, capsys, opset):
    path = tmp_path / "m.onnx"
    onnx.save(_tiny_model(opset=opset), str(path))
    rc, written = _convert(tmp_path, path)
    assert rc == 2 and written == []
    assert f"opset {opset} is not supported" in _one_error_line(capsys)


def _external_model(folder) -> onnx.ModelProto:
    w = RNG.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(folder / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.weights", size_threshold=0)
    return model


def test_external_data_next_to_the_model(tmp_path, capsys):
    _external_model(tmp_path)
    graph = load(tmp_path / "ext.onnx")
    x = RNG.uniform(-1, 1, (1, 3, 4, 4)).astype(np.float32)
    ref = ort.InferenceSession(str(tmp_path / "ext.onnx"), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})
    np.testing.assert_allclose(run_graph(graph, {"x": x[0]}, ["y"])["y"], ref[0][0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("location", ["../secret.weights", "/etc/passwd", "sub/../../secret.weights"])
def test_external_data_escaping_the_folder(tmp_path, capsys, location):
    folder = tmp_path / "model"
    folder.mkdir()
    _external_model(folder)
    (tmp_path / "secret.weights").write_bytes((folder / "ext.weights").read_bytes())
    model = onnx.load(str(folder / "ext.onnx"), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(model, str(folder / "ext.onnx"))
    rc, written = _convert(tmp_path, folder / "ext.onnx")
    line = _one_error_line(capsys)
    assert rc == 2 and written == []
    assert "ext.onnx" in line and "tensor w" in line and "folder" in line


def test_external_data_through_a_link_out_of_the_folder(tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    _external_model(folder)
    (tmp_path / "outside.weights").write_bytes((folder / "ext.weights").read_bytes())
    (folder / "ext.weights").unlink()
    (folder / "ext.weights").symlink_to(tmp_path / "outside.weights")
    rc, _ = _convert(tmp_path, folder / "ext.onnx")
    assert rc == 2 and "outside the model's folder" in _one_error_line(capsys)


def test_shape_option_needs_a_single_input(tmp_path, capsys):
    nodes = [helper.make_node("Add", ["a", "b"], ["y"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, "H", "W"]) for n in "ab"]
    graph = helper.make_graph(nodes, "two", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "two.onnx"))
    rc, written = _convert(tmp_path, tmp_path / "two.onnx", "--shape", "4,4,3")
    assert rc == 2 and written == [] and "one-input model" in _one_error_line(capsys)
