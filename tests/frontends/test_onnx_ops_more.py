"""The ONNX operators added for breadth (1-D/3-D windows, element-wise math, reductions, gathers, tiles)
against onnxruntime on generated models, shapes and attributes varied by hypothesis; each converted
model runs in the real ncnn runtime."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.frontends.onnx import load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_onnx_ops import check, make_model, rand, types

FEW = settings(max_examples=8, deadline=None, derandomize=True)


def check_here(model: onnx.ModelProto, rtol: float = 1e-4, **kwargs):
    """:func:`check` in a fresh temporary folder (hypothesis runs many examples per test)."""
    with tempfile.TemporaryDirectory() as tmp:
        return check(model, Path(tmp), rtol=rtol, **kwargs)


# -- 1-D and 3-D windows ------------------------------------------------------------------------
@FEW
@given(rank=st.sampled_from([1, 3]), group=st.sampled_from([1, 2]), k=st.integers(1, 3), stride=st.integers(1, 2),
       dil=st.integers(1, 2), pad=st.integers(0, 1), bias=st.booleans(),
       auto_pad=st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
def test_conv_1d_3d(rank, group, k, stride, dil, pad, bias, auto_pad):
    cin, cout = 2 * group, 3 * group
    spatial = [9] if rank == 1 else [5, 6, 4]
    inits = {"w": rand(cout, cin // group, *[k] * rank), "b": rand(cout)}
    attrs = {"kernel_shape": [k] * rank, "strides": [stride] * rank, "dilations": [dil] * rank, "group": group}
    if auto_pad == "NOTSET":
        attrs["pads"] = [pad] * 2 * rank
    else:
        attrs["auto_pad"] = auto_pad
        attrs["dilations"] = [1] * rank
    node = helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["y"], **attrs)
    graph = check_here(make_model([node], {"x": [1, cin, *spatial]}, inits))
    dw = "DepthWise" if group > 1 else ""
    assert types(graph)[1] == f"Convolution{dw}{rank}D"


@FEW
@given(rank=st.sampled_from([1, 3]), op=st.sampled_from(["MaxPool", "AveragePool"]), k=st.integers(1, 3),
       stride=st.integers(1, 3), pad=st.integers(0, 1), ceil=st.integers(0, 1), include=st.integers(0, 1))
def test_pool_1d_3d(rank, op, k, stride, pad, ceil, include):
    assume(pad < k and not (ceil and include and pad))
    spatial = [11] if rank == 1 else [5, 7, 6]
    attrs = {"kernel_shape": [k] * rank, "strides": [stride] * rank, "pads": [pad] * 2 * rank, "ceil_mode": ceil}
    if op == "AveragePool":
        attrs["count_include_pad"] = include
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    model = make_model([node], {"x": [1, 3, *spatial]})
    try:
        graph = check_here(model)
    except Exception as e:  # a ceil_mode whose last window onnxruntime drops has no ncnn form
        assert "cannot reproduce the output size" in str(e)
        return
    assert types(graph)[1] == f"Pooling{rank}D"


# -- element-wise math --------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Abs", "Neg", "Floor", "Ceil", "Exp", "Sin", "Cos", "Atan", "Round", "Sign",
                                "Sinh", "Asinh", "Tan"])
def test_unary(tmp_path, op):
    graph = check(make_model([helper.make_node(op, ["x"], ["y"])], {"x": [1, 3, 4, 4]}), tmp_path)
    assert types(graph) == ["Input", "UnaryOp"]


@pytest.mark.parametrize("op", ["Sqrt", "Log", "Reciprocal"])
def test_unary_positive(tmp_path, op):
    x = np.abs(rand(1, 2, 3, 4)) + 0.1
    check(make_model([helper.make_node(op, ["x"], ["y"])], {"x": [1, 2, 3, 4]}), tmp_path, feeds={"x": x})


@FEW
@given(op=st.sampled_from(["Elu", "Selu", "Celu", "Softplus", "Softsign", "Shrink", "Erf"]),
       alpha=st.floats(0.2, 2.0), lambd=st.floats(0.0, 1.0), bias=st.floats(0.0, 1.0),
       shape=st.sampled_from([[1, 3, 4, 4], [1, 7], [1, 2, 5]]))
def test_activation_more(op, alpha, lambd, bias, shape):
    attrs = {"Elu": {"alpha": alpha}, "Selu": {"alpha": alpha, "gamma": 1.0 + lambd}, "Celu": {"alpha": alpha},
             "Shrink": {"lambd": lambd, "bias": bias}}.get(op, {})
    check_here(make_model([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": shape}))


@pytest.mark.parametrize("exponent,ncnn_type", [(2.0, "UnaryOp"), (0.5, "UnaryOp"), (-1.0, "UnaryOp"),
                                                (3.0, "BinaryOp"), (1.5, "BinaryOp")])
def test_pow_constant_exponent(tmp_path, exponent, ncnn_type):
    x = np.abs(rand(1, 3, 4, 4)) + 0.2
    model = make_model([helper.make_node("Pow", ["x", "e"], ["y"])], {"x": [1, 3, 4, 4]},
                       {"e": np.array(exponent, np.float32)})
    assert types(check(model, tmp_path, feeds={"x": x}))[-1] == ncnn_type


def test_pow_runtime_exponent_refused(tmp_path):
    model = make_model([helper.make_node("Pow", ["x", "e"], ["y"])], {"x": [1, 3, 4], "e": [1, 3, 4]})
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(Exception, match="exponent computed at run time"):
        load(tmp_path / "m.onnx")


@FEW
@given(op=st.sampled_from(["Max", "Min", "Sum", "Mean"]), count=st.integers(1, 4), broadcast=st.booleans())
def test_variadic(op, count, broadcast):
    names = [f"x{i}" for i in range(count)]
    shapes = {n: [1, 3, 4, 4] for n in names}
    inits = {"c": rand(3, 1, 1)} if broadcast else {}
    node = helper.make_node(op, names + (["c"] if broadcast else []), ["y"])
    check_here(make_model([node], shapes, inits))


@FEW
@given(op=st.sampled_from(["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                           "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare"]),
       axes=st.sets(st.integers(1, 3), min_size=1), keepdims=st.integers(0, 1))
def test_reductions(op, axes, keepdims):
    assume(keepdims or len(axes) < 3)  # reducing every non-batch axis without keepdims leaves a scalar
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)
    model = make_model([node], {"x": [1, 3, 4, 5]}, {"axes": np.array(sorted(axes), np.int64)}, opset=18)
    check_here(model, rtol=1e-3)


def test_reduce_log_sum(tmp_path):
    node = helper.make_node("ReduceLogSum", ["x"], ["y"], axes=[2], keepdims=1)
    check(make_model([node], {"x": [1, 3, 4, 5]}, opset=13), tmp_path, feeds={"x": np.abs(rand(1, 3, 4, 5)) + 0.1})


@FEW
@given(axis=st.integers(-3, 3), shape=st.sampled_from([[1, 3, 4, 5], [1, 6, 7]]))
def test_log_softmax(axis, shape):
    assume(-len(shape) < axis < len(shape) and axis % len(shape) != 0)
    check_here(make_model([helper.make_node("LogSoftmax", ["x"], ["y"], axis=axis)], {"x": shape}), rtol=1e-3)


@pytest.mark.parametrize("shape", [[1, 4, 4, 6], [1, 4, 9]])
def test_instance_norm(tmp_path, shape):
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4)
    graph = check(make_model([node], {"x": shape}, {"s": rand(4), "b": rand(4)}), tmp_path, rtol=1e-3)
    assert "InstanceNorm" in types(graph)


@pytest.mark.parametrize("shape", [[1, 3, 4, 5], [1, 3, 5]])
def test_prelu_legacy_per_channel_slope(tmp_path, shape):
    """A 1-D slope of the channel count in an opset-6 model is per channel (PRelu before opset 7)."""
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    model = make_model([node], {"x": shape}, {"s": rand(3)}, opset=6)
    model.ir_version = 3
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = rand(*shape, scale=2.0)
    got = run_graph(load(tmp_path / "m.onnx"), {"x": x[0]}, ["y"])["y"]
    slope = numpy_helper.to_array(model.graph.initializer[0])
    want = np.where(x[0] > 0, x[0], x[0] * slope.reshape((3,) + (1,) * (len(shape) - 2)))
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-6, atol=1e-6)


# -- gathers and tiles --------------------------------------------------------------------------
@FEW
@given(vocab=st.integers(2, 9), dim=st.integers(1, 6), words=st.integers(1, 7), seed=st.integers(0, 99))
def test_gather_embedding(vocab, dim, words, seed):
    rng = np.random.default_rng(seed)
    table = rng.uniform(-1, 1, (vocab, dim)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"])], "t",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, words])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    ids = rng.integers(0, vocab, (1, words)).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        onnx.save(model, str(path))
        converted = load(path)
        want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["y"], {"ids": ids})[0]
        # ncnn's Embed reads its input blob as int32 data
        got = run_graph(converted, {"ids": ids[0].astype(np.int32).view(np.float32)}, ["y"])["y"]
    assert types(converted) == ["Input", "Embed"]
    np.testing.assert_allclose(got.reshape(want[0].shape), want[0], rtol=1e-6)


@FEW
@given(axis=st.integers(1, 3), indices=st.lists(st.integers(-3, 2), min_size=1, max_size=4), scalar=st.booleans())
def test_gather_constant_indices(axis, indices, scalar):
    index = np.array(indices[0] if scalar else indices, np.int64)
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)
    check_here(make_model([node], {"x": [1, 3, 4, 4]}, {"i": index}))


@FEW
@given(repeats=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2)))
def test_tile(repeats):
    node = helper.make_node("Tile", ["x", "r"], ["y"])
    check_here(make_model([node], {"x": [1, 2, 3, 4]}, {"r": np.array([1, *repeats], np.int64)}))


# -- rearrangements ncnn holds in one layer -----------------------------------------------------
@pytest.mark.parametrize("mode", ["CRD", "DCR"])
@pytest.mark.parametrize("r", [2, 3])
def test_depth_to_space(tmp_path, mode, r):
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=r, mode=mode)
    graph = check(make_model([node], {"x": [1, 2 * r * r, 4, 3]}), tmp_path)
    assert types(graph) == ["Input", "PixelShuffle"]


@pytest.mark.parametrize("crd", [True, False])
def test_pixel_shuffle_chain(tmp_path, crd):
    """PyTorch's pixel_shuffle export: Reshape to 6-D, Transpose, Reshape back -> one PixelShuffle."""
    c, r, h, w = 2, 3, 4, 4
    mid, perm = ([1, c, r, r, h, w], [0, 1, 4, 2, 5, 3]) if crd else ([1, r, r, c, h, w], [0, 3, 4, 1, 5, 2])
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("Transpose", ["a"], ["b"], perm=perm),
             helper.make_node("Reshape", ["b", "s2"], ["y"])]
    inits = {"s1": np.array(mid, np.int64), "s2": np.array([1, c, h * r, w * r], np.int64)}
    graph = check(make_model(nodes, {"x": [1, c * r * r, h, w]}, inits), tmp_path)
    assert types(graph) == ["Input", "PixelShuffle"]


@pytest.mark.parametrize("groups", [2, 3])
def test_channel_shuffle_chain(tmp_path, groups):
    """ShuffleNet's channel shuffle: Reshape to 5-D, Transpose of the two channel axes, Reshape back."""
    c, h, w = 6, 4, 3
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"]),
             helper.make_node("Transpose", ["a"], ["b"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["b", "s2"], ["y"])]
    inits = {"s1": np.array([1, groups, c // groups, h, w], np.int64), "s2": np.array([1, c, h, w], np.int64)}
    graph = check(make_model(nodes, {"x": [1, c, h, w]}, inits), tmp_path)
    assert types(graph) == ["Input", "ShuffleChannel"]


# -- matrix products and 4-D transposes ---------------------------------------------------------
@pytest.mark.parametrize("a,b,b_const", [([1, 3, 4], [1, 4, 5], False), ([1, 2, 3, 4], [1, 2, 4, 5], False),
                                         ([1, 2, 3, 4], [4, 5], True), ([1, 2, 3, 4], [1, 1, 4, 5], False)])
def test_matmul(tmp_path, a, b, b_const):
    """Attention-style products of two activations (and constants beyond 2-D A) -> ncnn MatMul."""
    inputs = {"a": a} if b_const else {"a": a, "b": b}
    inits = {"b": rand(*b)} if b_const else {}
    graph = check(make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs, inits), tmp_path)
    assert "MatMul" in types(graph)


@FEW
@given(perm=st.permutations([1, 2, 3, 4]))
def test_transpose_4d(perm):
    node = helper.make_node("Transpose", ["x"], ["y"], perm=[0, *perm])
    check_here(make_model([node], {"x": [1, 2, 3, 4, 5]}))


@FEW
@given(rank=st.sampled_from([1, 2]), k=st.integers(1, 3), stride=st.integers(1, 3), dil=st.integers(2, 3),
       pad=st.integers(0, 1), ceil=st.integers(0, 1))
def test_dilated_max_pool(rank, k, stride, dil, pad, ceil):
    """ncnn pooling has no dilation: the maximum of strided crops of the padded input, exactly."""
    assume(pad < k)
    spatial = [13] if rank == 1 else [9, 8]
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k] * rank, strides=[stride] * rank,
                            dilations=[dil] * rank, pads=[pad] * 2 * rank, ceil_mode=ceil)
    graph = check_here(make_model([node], {"x": [1, 3, *spatial]}, opset=12))
    assert "Crop" in types(graph) or k == 1


@FEW
@given(shape=st.sampled_from([[1, 3, 9, 8], [1, 7, 10], [1, 11]]), start=st.integers(-4, 3), stop=st.integers(-2, 12),
       step=st.integers(1, 3), last=st.booleans())
def test_slice_with_steps(shape, start, stop, step, last):
    axis = len(shape) - 1 if last or len(shape) == 2 else len(shape) - 2
    assume(len(range(*slice(start, stop).indices(shape[axis]))[::step]) > 0)
    inits = {n: np.array([v], np.int64) for n, v in (("s", start), ("e", stop), ("a", axis), ("k", step))}
    node = helper.make_node("Slice", ["x", "s", "e", "a", "k"], ["y"])
    check_here(make_model([node], {"x": shape}, inits))


@pytest.mark.parametrize("slope_shape", [(4,), (3, 1), (1, 3, 4), (2, 3, 4)])
def test_prelu_broadcast_slope(tmp_path, slope_shape):
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    check(make_model([node], {"x": [1, 2, 3, 4]}, {"s": rand(*slope_shape)}), tmp_path)


@FEW
@given(rank=st.sampled_from([1, 3]), group=st.sampled_from([1, 2]), k=st.integers(1, 3), stride=st.integers(1, 2),
       dil=st.integers(1, 2), pad=st.integers(0, 1), out_pad=st.integers(0, 1), bias=st.booleans())
def test_conv_transpose_1d_3d(rank, group, k, stride, dil, pad, out_pad, bias):
    assume(out_pad < stride and pad < k)
    cin, cout = 2 * group, 3 * group
    spatial = [7] if rank == 1 else [3, 4, 3]
    inits = {"w": rand(cin, cout // group, *[k] * rank), "b": rand(cout)}
    node = helper.make_node("ConvTranspose", ["x", "w", "b"] if bias else ["x", "w"], ["y"], kernel_shape=[k] * rank,
                            strides=[stride] * rank, dilations=[dil] * rank, pads=[pad] * 2 * rank,
                            output_padding=[out_pad] * rank, group=group)
    graph = check_here(make_model([node], {"x": [1, cin, *spatial]}, inits))
    assert types(graph)[1] == f"Deconvolution{'DepthWise' if group > 1 else ''}{rank}D"
