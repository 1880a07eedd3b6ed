"""Each supported ONNX operator: a small random model built with onnx.helper, converted, run in the
real ncnn runtime and compared with onnxruntime on the same input."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.frontends.onnx import load

RNG = np.random.default_rng(1234)


def _ir_version(opset: int) -> int:
    return 7 if opset <= 12 else 8 if opset <= 17 else 9 if opset <= 19 else 10


def make_model(nodes, inputs: dict, inits: dict | None = None, outputs=("y",), opset: int = 13) -> onnx.ModelProto:
    """A one-graph model: float inputs of the given shapes, initializers, named outputs."""
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = _ir_version(opset)
    return model


def rand(*shape: int, scale: float = 1.0) -> np.ndarray:
    """Random float32 values in [-scale, scale)."""
    return (RNG.uniform(-scale, scale, shape)).astype(np.float32)


def check(model: onnx.ModelProto, tmp_path, rtol: float = 1e-4, feeds: dict | None = None, **load_options):
    """Convert the model, run both runtimes, compare every output; returns the ncnn graph."""
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    if feeds is None:
        feeds = {}
        for vi in model.graph.input:
            shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            feeds[vi.name] = rand(*shape, scale=2.0)
    for name, x in feeds.items():
        # backends/ncnn_runtime.py hands numpy memory to ncnn.Mat as is; a 3-D Mat whose h*w is not a
        # multiple of 4 then has an unaligned channel step that some ncnn layers (x86 Slice) misread.
        assert x.ndim != 4 or (x.shape[2] * x.shape[3]) % 4 == 0, f"input {name}: pick h*w % 4 == 0"
    graph = load(path, **load_options)
    outputs = [o.name for o in model.graph.output]
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(outputs, feeds)
    got = run_graph(graph, {k: v[0] for k, v in feeds.items()}, outputs)
    for name, r in zip(outputs, ref):
        g = got[name]
        assert g.size == r[0].size, f"{name}: ncnn shape {g.shape} vs onnx {r.shape}"
        np.testing.assert_allclose(g.reshape(r[0].shape), r[0], rtol=rtol,
                                   atol=rtol * max(1.0, float(np.abs(r).max())), err_msg=name)
    return graph


def types(graph) -> list[str]:
    """Layer types of a graph, in order."""
    return [layer.type for layer in graph.layers]


# -- convolutions -------------------------------------------------------------------------------
@pytest.mark.parametrize("cin,cout,k,stride,dil,pads,group,bias", [
    (3, 8, 3, 1, 1, [1, 1, 1, 1], 1, True),
    (4, 6, 3, 2, 1, [0, 1, 2, 1], 1, False),
    (4, 4, 3, 1, 2, [2, 2, 2, 2], 4, True),
    (6, 9, 5, 2, 1, [2, 2, 2, 2], 3, True),
    (3, 5, 1, 1, 1, [0, 0, 0, 0], 1, True),
])
def test_conv(tmp_path, cin, cout, k, stride, dil, pads, group, bias):
    inits = {"w": rand(cout, cin // group, k, k), "b": rand(cout)}
    node = helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["y"], kernel_shape=[k, k],
                            strides=[stride, stride], dilations=[dil, dil], pads=pads, group=group)
    graph = check(make_model([node], {"x": [1, cin, 11, 12]}, inits), tmp_path)
    assert types(graph)[1] == ("Convolution" if group == 1 else "ConvolutionDepthWise")


@pytest.mark.parametrize("auto_pad,stride", [("SAME_UPPER", 2), ("SAME_LOWER", 2), ("VALID", 1), ("SAME_UPPER", 1)])
def test_conv_auto_pad(tmp_path, auto_pad, stride):
    inits = {"w": rand(4, 3, 4, 4)}
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[4, 4], strides=[stride, stride],
                            auto_pad=auto_pad)
    check(make_model([node], {"x": [1, 3, 9, 12]}, inits, opset=11), tmp_path)


@pytest.mark.parametrize("cin,cout,k,stride,pads,out_pad,group", [
    (4, 6, 3, 2, [1, 1, 1, 1], [1, 1], 1),
    (3, 5, 4, 2, [0, 0, 0, 0], [0, 0], 1),
    (4, 4, 3, 1, [1, 0, 1, 0], [0, 0], 4),
    (6, 4, 2, 2, [0, 0, 0, 0], [0, 0], 2),
])
def test_conv_transpose(tmp_path, cin, cout, k, stride, pads, out_pad, group):
    inits = {"w": rand(cin, cout // group, k, k), "b": rand(cout)}
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride],
                            pads=pads, output_padding=out_pad, group=group)
    check(make_model([node], {"x": [1, cin, 5, 4]}, inits), tmp_path)


def test_batch_norm(tmp_path):
    c = 5
    inits = {"s": rand(c), "b": rand(c), "m": rand(c), "v": RNG.uniform(0.5, 2, c).astype(np.float32)}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)
    graph = check(make_model([node], {"x": [1, c, 4, 6]}, inits, opset=9), tmp_path)
    assert types(graph) == ["Input", "BatchNorm"]


# -- activations --------------------------------------------------------------------------------
@pytest.mark.parametrize("op,attrs,ncnn_type", [
    ("Relu", {}, "ReLU"),
    ("LeakyRelu", {"alpha": 0.13}, "ReLU"),
    ("LeakyRelu", {}, "ReLU"),
    ("Sigmoid", {}, "Sigmoid"),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, "HardSigmoid"),
    ("HardSigmoid", {}, "HardSigmoid"),
    ("HardSwish", {}, "HardSwish"),
    ("Dropout", {}, "Dropout"),
])
@pytest.mark.parametrize("shape", [[1, 3, 5, 8], [1, 10], [1, 3, 7]])
def test_activation(tmp_path, op, attrs, ncnn_type, shape):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = check(make_model([node], {"x": shape}, opset=14), tmp_path)
    assert types(graph) == ["Input", ncnn_type]


@pytest.mark.parametrize("slope_shape", [(4, 1, 1), (1,), (1, 4, 1, 1)])
def test_prelu(tmp_path, slope_shape):
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    check(make_model([node], {"x": [1, 4, 3, 4]}, {"s": rand(*slope_shape)}), tmp_path)


def test_prelu_2d(tmp_path):
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    check(make_model([node], {"x": [1, 6]}, {"s": rand(6)}), tmp_path)


@pytest.mark.parametrize("opset,lo,hi", [(9, 0.0, 6.0), (13, 0.0, 6.0), (13, -0.5, None), (11, None, 0.7)])
def test_clip(tmp_path, opset, lo, hi):
    if opset < 11:
        node = helper.make_node("Clip", ["x"], ["y"], min=lo, max=hi)
        inits = {}
    else:
        inits = {k: np.array(v, np.float32) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
        node = helper.make_node("Clip", ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""], ["y"])
    graph = check(make_model([node], {"x": [1, 3, 4, 4]}, inits, opset=opset), tmp_path)
    assert types(graph) == ["Input", "Clip"]


def test_identity(tmp_path):
    nodes = [helper.make_node("Identity", ["x"], ["t"]), helper.make_node("Relu", ["t"], ["y"])]
    graph = check(make_model(nodes, {"x": [1, 2, 3, 4]}), tmp_path)
    assert types(graph) == ["Input", "ReLU"]


def test_identity_as_graph_output(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Identity", ["t"], ["y"])]
    graph = check(make_model(nodes, {"x": [1, 2, 3, 4]}, outputs=("y", "t")), tmp_path)
    assert types(graph) == ["Input", "ReLU", "Noop"]


# -- arithmetic ---------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("a_shape,b_shape,b_const", [
    ([1, 3, 4, 5], [], True),
    ([1, 3, 4, 5], [1, 3, 1, 1], True),
    ([1, 3, 4, 5], [3, 1, 1], True),
    ([1, 3, 4, 5], [4, 5], True),
    ([1, 3, 4, 5], [1, 3, 4, 5], True),
    ([1, 3, 4, 5], [1, 3, 4, 5], False),
    ([1, 3, 4, 5], [1, 1, 4, 5], False),
    ([1, 3, 4, 5], [1, 3, 4, 1], False),
    ([1, 3, 4, 5], [1, 5], False),
    ([1, 8], [1, 8], False),
])
def test_binary(tmp_path, op, a_shape, b_shape, b_const):
    inputs = {"a": a_shape}
    if b_const:
        b = RNG.uniform(0.5, 2, b_shape).astype(np.float32) * RNG.choice([-1, 1], b_shape).astype(np.float32)
        inits = {"b": np.asarray(b, np.float32)}
    else:
        inputs["b"] = b_shape
        inits = {}
    node = helper.make_node(op, ["a", "b"], ["y"])
    feeds = {"a": rand(*a_shape, scale=2)}
    if not b_const:
        feeds["b"] = (RNG.uniform(0.5, 2, b_shape) * RNG.choice([-1, 1], b_shape)).astype(np.float32)
    check(make_model([node], inputs, inits), tmp_path, feeds=feeds)


@pytest.mark.parametrize("op", ["Sub", "Div", "Add"])
def test_binary_scalar_on_the_left(tmp_path, op):
    node = helper.make_node(op, ["b", "a"], ["y"])
    feeds = {"a": RNG.uniform(0.5, 2, (1, 2, 3, 4)).astype(np.float32)}
    graph = check(make_model([node], {"a": [1, 2, 3, 4]}, {"b": np.array(1.5, np.float32)}), tmp_path, feeds=feeds)
    assert types(graph) == ["Input", "BinaryOp"]


# -- pooling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("k,s,pads,ceil,include", [
    (3, 2, [0, 0, 0, 0], 0, 0),
    (3, 2, [0, 0, 0, 0], 1, 0),
    (2, 2, [1, 1, 1, 1], 0, 1),
    (3, 2, [1, 1, 1, 1], 1, 0),
    (3, 2, [1, 1, 1, 1], 1, 1),
    (3, 1, [1, 0, 1, 2], 0, 1),
    (2, 3, [0, 0, 0, 0], 1, 1),
])
def test_pool(tmp_path, op, k, s, pads, ceil, include):
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": pads, "ceil_mode": ceil}
    if op == "AveragePool":
        attrs["count_include_pad"] = include
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    check(make_model([node], {"x": [1, 3, 9, 12]}, opset=11), tmp_path)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_pool_auto_pad(tmp_path, auto_pad):
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad=auto_pad)
    check(make_model([node], {"x": [1, 2, 8, 9]}, opset=9), tmp_path)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(tmp_path, op):
    nodes = [helper.make_node(op, ["x"], ["p"]), helper.make_node("Mul", ["p", "s"], ["y"])]
    check(make_model(nodes, {"x": [1, 4, 5, 8]}, {"s": rand(1, 4, 1, 1)}), tmp_path)


# -- dense --------------------------------------------------------------------------------------
@pytest.mark.parametrize("trans_b,alpha,beta,c_shape", [
    (1, 1.0, 1.0, (7,)), (0, 0.5, 2.0, (1, 7)), (1, 1.0, 1.0, None), (0, 1.0, 0.3, ()),
])
def test_gemm(tmp_path, trans_b, alpha, beta, c_shape):
    b = rand(7, 12) if trans_b else rand(12, 7)
    inits = {"b": b}
    inputs = ["x", "b"]
    if c_shape is not None:
        inits["c"] = rand(*c_shape)
        inputs.append("c")
    node = helper.make_node("Gemm", inputs, ["y"], transB=trans_b, alpha=alpha, beta=beta)
    graph = check(make_model([node], {"x": [1, 12]}, inits, opset=11), tmp_path)
    assert types(graph) == ["Input", "InnerProduct"]


@pytest.mark.parametrize("x_shape", [[1, 12], [1, 5, 12]])
def test_matmul(tmp_path, x_shape):
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    check(make_model([node], {"x": x_shape}, {"w": rand(12, 6)}), tmp_path)


# -- shape and layout ---------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [1, 0, -3])
def test_flatten(tmp_path, axis):
    node = helper.make_node("Flatten", ["x"], ["y"], axis=axis)
    graph = check(make_model([node], {"x": [1, 3, 4, 5]}), tmp_path)
    assert types(graph) == ["Input", "Flatten"]


@pytest.mark.parametrize("target", [[1, 12, 5], [1, -1], [1, 0, 20], [1, 60, 1]])
def test_reshape(tmp_path, target):
    node = helper.make_node("Reshape", ["x", "s"], ["y"])
    check(make_model([node], {"x": [1, 3, 4, 5]}, {"s": np.array(target, np.int64)}), tmp_path)


@pytest.mark.parametrize("perm", [[0, 1, 3, 2], [0, 2, 1, 3], [0, 2, 3, 1], [0, 3, 1, 2], [0, 3, 2, 1], [0, 1, 2, 3]])
def test_transpose_3d(tmp_path, perm):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=perm), helper.make_node("Sigmoid", ["t"], ["y"])]
    check(make_model(nodes, {"x": [1, 2, 3, 4]}), tmp_path)


def test_transpose_2d(tmp_path):
    node = helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1])
    graph = check(make_model([node], {"x": [1, 3, 5]}), tmp_path)
    assert types(graph) == ["Input", "Permute"]


@pytest.mark.parametrize("axis", [1, 2, 3, -1])
def test_concat(tmp_path, axis):
    nodes = [helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=axis)]
    shape_b = [1, 2, 4, 4]
    shape_b[axis] = 5 if axis != 1 else 3
    check(make_model(nodes, {"a": [1, 2, 4, 4], "b": shape_b}, {"c": rand(1, 2, 4, 4)}), tmp_path)


@pytest.mark.parametrize("opset,axis,sizes", [(11, 1, [2, 4]), (13, 2, [1, 2, 3]), (13, -1, None), (18, 1, None)])
def test_split(tmp_path, opset, axis, sizes):
    nout = len(sizes) if sizes else 2 if opset < 18 else 3
    outs = [f"y{i}" for i in range(nout)]
    inits, inputs, attrs = {}, ["x"], {"axis": axis}
    if sizes and opset < 13:
        attrs["split"] = sizes
    elif sizes:
        inits["s"] = np.array(sizes, np.int64)
        inputs.append("s")
    if opset >= 18 and not sizes:
        attrs["num_outputs"] = nout
    node = helper.make_node("Split", inputs, outs, **attrs)
    graph = check(make_model([node], {"x": [1, 6, 6, 4]}, inits, outputs=outs, opset=opset), tmp_path)
    assert "Slice" in types(graph)


@pytest.mark.parametrize("opset,starts,ends,axes", [
    (9, [1, 0], [3, 2], [1, 3]),
    (13, [0, -3], [10, -1], [2, 3]),
    (13, [1], [100], [1]),
    (11, [0, 1, 2], [1, 3, 4], [0, 1, 2]),
])
def test_slice(tmp_path, opset, starts, ends, axes):
    if opset < 10:
        node = helper.make_node("Slice", ["x"], ["y"], starts=starts, ends=ends, axes=axes)
        inits = {}
    else:
        inits = {"st": np.array(starts, np.int64), "en": np.array(ends, np.int64), "ax": np.array(axes, np.int64)}
        node = helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"])
    graph = check(make_model([node], {"x": [1, 4, 5, 8]}, inits, opset=opset), tmp_path)
    assert types(graph) == ["Input", "Crop"]


@pytest.mark.parametrize("opset,mode,pads", [
    (9, "constant", [0, 0, 1, 2, 0, 0, 3, 0]),
    (13, "constant", [0, 1, 1, 0, 0, 2, 0, 1]),
    (11, "edge", [0, 0, 2, 1, 0, 0, 1, 2]),
    (13, "reflect", [0, 0, 1, 2, 0, 0, 2, 1]),
])
def test_pad(tmp_path, opset, mode, pads):
    if opset < 11:
        node = helper.make_node("Pad", ["x"], ["y"], mode=mode, pads=pads, value=1.5)
        inits = {}
    else:
        inits = {"p": np.array(pads, np.int64), "v": np.array(1.5, np.float32)}
        node = helper.make_node("Pad", ["x", "p", "v" if mode == "constant" else ""], ["y"], mode=mode)
    graph = check(make_model([node], {"x": [1, 3, 4, 5]}, inits, opset=opset), tmp_path)
    assert types(graph) == ["Input", "Padding"]


@pytest.mark.parametrize("mode,ct,nearest,scale", [
    ("nearest", "asymmetric", "floor", 2.0),
    ("nearest", "asymmetric", "floor", 3.0),
    ("nearest", "half_pixel", "round_prefer_floor", 2.0),
    ("linear", "half_pixel", None, 2.0),
    ("linear", "pytorch_half_pixel", None, 1.5),
    ("linear", "align_corners", None, 2.0),
    ("linear", "half_pixel", None, 0.5),
    ("cubic", "half_pixel", None, 2.0),
    ("cubic", "align_corners", None, 2.0),
])
def test_resize(tmp_path, mode, ct, nearest, scale):
    attrs = {"mode": mode, "coordinate_transformation_mode": ct}
    if nearest:
        attrs["nearest_mode"] = nearest
    inits = {"roi": np.array([], np.float32), "sc": np.array([1, 1, scale, scale], np.float32)}
    node = helper.make_node("Resize", ["x", "roi", "sc"], ["y"], **attrs)
    graph = check(make_model([node], {"x": [1, 2, 6, 8]}, inits, opset=13), tmp_path)
    assert types(graph) == ["Input", "Interp"]


def test_resize_sizes(tmp_path):
    inits = {"sz": np.array([1, 2, 9, 13], np.int64)}
    node = helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="linear")
    check(make_model([node], {"x": [1, 2, 6, 8]}, inits, opset=19), tmp_path)


def test_upsample(tmp_path):
    node = helper.make_node("Upsample", ["x", "sc"], ["y"], mode="nearest")
    check(make_model([node], {"x": [1, 3, 4, 5]}, {"sc": np.array([1, 1, 2, 2], np.float32)}, opset=9), tmp_path)


@pytest.mark.parametrize("opset,axis,shape", [
    (13, 1, [1, 5, 3, 4]), (13, -1, [1, 5, 3, 4]), (13, 2, [1, 5, 3, 4]), (11, 1, [1, 5, 3, 4]),
    (11, 1, [1, 10]), (9, 2, [1, 5, 3, 4]), (13, 1, [1, 10]), (11, 1, [1, 7, 2, 2]), (11, 2, [1, 3, 4, 1]),
])
def test_softmax(tmp_path, opset, axis, shape):
    node = helper.make_node("Softmax", ["x"], ["y"], axis=axis)
    check(make_model([node], {"x": shape}, opset=opset), tmp_path)


@pytest.mark.parametrize("opset,axes,keepdims", [
    (13, [2, 3], 1), (13, [1], 0), (13, [-1], 1), (18, [2, 3], 0), (13, None, 1), (11, [1, 2, 3], 0),
])
def test_reduce_mean(tmp_path, opset, axes, keepdims):
    inits, inputs, attrs = {}, ["x"], {"keepdims": keepdims}
    if axes is not None and opset >= 18:
        inits["ax"] = np.array(axes, np.int64)
        inputs.append("ax")
    elif axes is not None:
        attrs["axes"] = axes
    node = helper.make_node("ReduceMean", inputs, ["y"], **attrs)
    check(make_model([node], {"x": [1, 3, 4, 5]}, inits, opset=opset), tmp_path)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(tmp_path, opset):
    if opset < 13:
        nodes = [helper.make_node("Squeeze", ["x"], ["s"], axes=[2]),
                 helper.make_node("Sigmoid", ["s"], ["t"]),
                 helper.make_node("Unsqueeze", ["t"], ["y"], axes=[3])]
        inits = {}
    else:
        nodes = [helper.make_node("Squeeze", ["x", "a"], ["s"]),
                 helper.make_node("Sigmoid", ["s"], ["t"]),
                 helper.make_node("Unsqueeze", ["t", "b"], ["y"])]
        inits = {"a": np.array([2], np.int64), "b": np.array([3], np.int64)}
    check(make_model(nodes, {"x": [1, 3, 1, 8]}, inits, opset=opset), tmp_path)


@pytest.mark.parametrize("opset", range(9, 22))
def test_small_cnn_at_every_opset(tmp_path, opset):
    c = 6
    inits = {"w": rand(c, 3, 3, 3), "b": rand(c), "s": RNG.uniform(0.5, 1.5, c).astype(np.float32), "bi": rand(c),
             "m": rand(c), "v": RNG.uniform(0.5, 2, c).astype(np.float32), "fw": rand(5, c), "fb": rand(5)}
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "bi", "m", "v"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["l"], transB=1),
        helper.make_node("Softmax", ["l"], ["y"], axis=1),
    ]
    graph = check(make_model(nodes, {"x": [1, 3, 8, 8]}, inits, opset=opset), tmp_path)
    assert types(graph) == ["Input", "Convolution", "BatchNorm", "ReLU", "Pooling", "Pooling", "InnerProduct",
                            "Softmax"]


def test_mobilenet_v3_like_block(tmp_path):
    c, e, r = 4, 8, 2
    inits = {"w1": rand(e, c, 1, 1), "w2": rand(e, 1, 3, 3), "s1": rand(r, e, 1, 1), "s2": rand(e, r, 1, 1),
             "w3": rand(c, e, 1, 1), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[1, 1]),
        helper.make_node("HardSwish", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w2"], ["d"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=e),
        helper.make_node("Clip", ["d", "lo", "hi"], ["d6"]),
        helper.make_node("GlobalAveragePool", ["d6"], ["g"]),
        helper.make_node("Conv", ["g", "s1"], ["g1"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["g1"], ["g2"]),
        helper.make_node("Conv", ["g2", "s2"], ["g3"], kernel_shape=[1, 1]),
        helper.make_node("HardSigmoid", ["g3"], ["g4"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["d6", "g4"], ["se"]),
        helper.make_node("Conv", ["se", "w3"], ["p"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["p", "x"], ["y"]),
    ]
    graph = check(make_model(nodes, {"x": [1, c, 6, 6]}, inits, opset=14), tmp_path)
    assert types(graph).count("Split") == 2 and "MemoryData" not in types(graph)
