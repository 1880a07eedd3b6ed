"""Every layer type of the numpy backend against the real ncnn runtime, on tiny models written by the
ncnn writer and random inputs, with parameters varied by hypothesis."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.backends.numpy import Interpreter
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.errors import NcnncError, UnsupportedError
from ncnnc.core.ir import Graph

FEW = settings(max_examples=12, deadline=None, derandomize=True)


def compare(graph: Graph, inputs: Mapping[str, np.ndarray], rtol: float = 1e-4) -> None:
    """Assert every graph output agrees with ncnn: same shape, NaN at the same places (ncnn's 0/0),
    elsewhere max abs diff <= rtol * max abs value."""
    outputs = graph.outputs
    ours = Interpreter(graph).run({k: v[None] for k, v in inputs.items()}, outputs)
    theirs = run_graph(graph, inputs, outputs)
    for name in outputs:
        a, r = ours[name][0], theirs[name]
        assert a.shape == r.shape, f"{name}: numpy {a.shape} vs ncnn {r.shape}"
        assert np.array_equal(np.isnan(a), np.isnan(r)), f"{name}: NaN at different places"
        finite = ~np.isnan(r)
        a, r = a[finite], r[finite]
        scale = max(float(np.abs(r).max(initial=0)), 1e-6)
        diff = float(np.abs(a - r).max(initial=0))
        assert diff <= rtol * scale, f"{name}: max diff {diff} (scale {scale})"


def rand(seed: int, *shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Uniform float32 test data."""
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def one_layer(ltype: str, shape: tuple[int, ...], params: dict, weights: dict | None = None,
              outputs: int = 1) -> Graph:
    """Input -> one layer."""
    b = GraphBuilder()
    x = b.input("data", shape)
    b.layer(ltype, [x], params, weights or {}, outputs=outputs)
    return b.build()


ACTIVATIONS = [(0, []), (1, []), (2, [0.1]), (3, [-0.5, 0.5]), (4, []), (5, []), (6, [0.2, 0.5])]


def _act_params(act: int) -> dict:
    a, params = ACTIVATIONS[act]
    return {9: a, 10: params} if params else {9: a}


pads = st.sampled_from([0, 1, 2, -233, -234])


@FEW
@given(cin=st.integers(1, 5), cout=st.integers(1, 6), kw=st.integers(1, 3), kh=st.integers(1, 3),
       stride=st.integers(1, 2), dil=st.integers(1, 2), pad=pads, bias=st.booleans(),
       act=st.integers(0, 6), size=st.integers(5, 9), seed=st.integers(0, 99))
def test_convolution(cin, cout, kw, kh, stride, dil, pad, bias, act, size, seed):
    # ncnn corrupts memory when SAME padding comes out negative along one axis (kernel extent < stride)
    assume(pad > -233 or min(dil * (kw - 1), dil * (kh - 1)) + 1 >= stride)
    weights = {"weight": rand(seed, cout * cin * kh * kw)}
    if bias:
        weights["bias"] = rand(seed + 1, cout)
    params = {0: cout, 1: kw, 11: kh, 2: dil, 3: stride, 4: pad, 5: int(bias), 6: cout * cin * kh * kw,
              18: 0.25, **_act_params(act)}
    compare(one_layer("Convolution", (cin, size, size + 1), params, weights), {"data": rand(seed, cin, size, size + 1)})


@FEW
@given(group=st.integers(1, 4), cin_g=st.integers(1, 2), cout_g=st.integers(1, 2), k=st.integers(1, 3),
       stride=st.integers(1, 2), dil=st.integers(1, 2), pad=pads, act=st.integers(0, 6), seed=st.integers(0, 99))
def test_convolution_depthwise(group, cin_g, cout_g, k, stride, dil, pad, act, seed):
    assume(pad > -233 or dil * (k - 1) + 1 >= stride)
    cin, cout = group * cin_g, group * cout_g
    ws = cout * cin_g * k * k
    params = {0: cout, 1: k, 2: dil, 3: stride, 4: pad, 5: 1, 6: ws, 7: group, **_act_params(act)}
    weights = {"weight": rand(seed, ws), "bias": rand(seed + 1, cout)}
    compare(one_layer("ConvolutionDepthWise", (cin, 7, 8), params, weights), {"data": rand(seed, cin, 7, 8)})


@FEW
@given(group=st.sampled_from([1, 2]), cin_g=st.integers(1, 3), cout_g=st.integers(1, 3), kw=st.integers(1, 3),
       kh=st.integers(1, 3), stride=st.integers(1, 3), dil=st.integers(1, 2),
       cut=st.sampled_from(["none", "pad", "same_upper", "same_lower"]), opad=st.integers(0, 1),
       act=st.integers(0, 6), seed=st.integers(0, 99))
def test_deconvolution(group, cin_g, cout_g, kw, kh, stride, dil, cut, opad, act, seed):
    cin, cout = group * cin_g, group * cout_g
    ws = cout * cin_g * kw * kh
    params = {0: cout, 1: kw, 11: kh, 2: dil, 3: stride, 5: 1, 6: ws, **_act_params(act)}
    if opad and stride > 1:
        params[18] = opad
    if cut == "pad":
        params.update({4: 1, 15: 0, 14: 1, 16: 0})
    elif cut != "none":  # ONNX's SAME output size (input * stride) cut from the full output
        assume(dil * (kw - 1) + 1 >= stride and dil * (kh - 1) + 1 >= stride)
        params.update({4: -233 if cut == "same_upper" else -234, 20: 5 * stride, 21: 4 * stride})
    ltype = "Deconvolution"
    if group > 1:
        ltype = "DeconvolutionDepthWise"
        params[7] = group
    weights = {"weight": rand(seed, ws), "bias": rand(seed + 1, cout)}
    compare(one_layer(ltype, (cin, 4, 5), params, weights), {"data": rand(seed, cin, 4, 5)})


@FEW
@given(shape=st.sampled_from([(7,), (3, 5), (2, 3, 4), (4, 6)]), n=st.integers(1, 9), act=st.integers(0, 6),
       bias=st.booleans(), seed=st.integers(0, 99))
def test_innerproduct(shape, n, act, bias, seed):
    num_input = shape[-1] if len(shape) == 2 else int(np.prod(shape))
    weights = {"weight": rand(seed, n * num_input)}
    if bias:
        weights["bias"] = rand(seed + 1, n)
    params = {0: n, 1: int(bias), 2: n * num_input, **_act_params(act)}
    compare(one_layer("InnerProduct", shape, params, weights), {"data": rand(seed, *shape)})


@FEW
@given(ptype=st.integers(0, 1), kw=st.integers(1, 3), kh=st.integers(1, 3), stride=st.integers(1, 3),
       pad=st.integers(0, 1), mode=st.integers(0, 3), include=st.integers(0, 1), h=st.integers(4, 9),
       w=st.integers(4, 9), seed=st.integers(0, 99))
def test_pooling(ptype, kw, kh, stride, pad, mode, include, h, w, seed):
    assume(pad < min(kw, kh))  # a window of padding only has no value (ncnn gives NaN / -FLT_MAX)
    assume(mode < 2 or min(kw, kh) >= stride)  # negative SAME padding is undefined behaviour in ncnn
    params = {0: ptype, 1: kw, 11: kh, 2: stride, 3: pad, 5: mode, 6: include}
    compare(one_layer("Pooling", (3, h, w), params), {"data": rand(seed, 3, h, w)})


@pytest.mark.parametrize("ptype", [0, 1])
@pytest.mark.parametrize("extra", [{4: 1}, {7: 1, 8: 3, 18: 2}, {7: 1, 8: 4, 18: 5}])
def test_pooling_global_and_adaptive(ptype, extra):
    compare(one_layer("Pooling", (4, 7, 9), {0: ptype, **extra}), {"data": rand(3, 4, 7, 9)})


ELEMENTWISE = [
    ("ReLU", {}), ("ReLU", {0: 0.2}), ("Clip", {0: -0.3, 1: 0.4}), ("Sigmoid", {}), ("TanH", {}),
    ("HardSigmoid", {0: 0.3, 1: 0.4}), ("HardSwish", {}), ("Swish", {}), ("Mish", {}), ("ELU", {0: 0.7}),
    ("SELU", {}), ("AbsVal", {}), ("BNLL", {}), ("Exp", {1: 0.5, 2: 0.1}), ("Exp", {0: 2.0}),
    ("Log", {1: 0.5, 2: 2.0}), ("Power", {0: 2.0, 1: 0.5, 2: 1.5}), ("Threshold", {0: 0.1}),
    ("Dropout", {}), ("Dropout", {0: 0.5}),
]


@pytest.mark.parametrize("ltype,params", ELEMENTWISE, ids=[f"{t}-{i}" for i, (t, _) in enumerate(ELEMENTWISE)])
@pytest.mark.parametrize("shape", [(3, 4, 5), (6,)])
def test_elementwise(ltype, params, shape):
    x = rand(1, *shape, low=-3, high=3)
    compare(one_layer(ltype, shape, params), {"data": x})


@pytest.mark.parametrize("shape", [(3, 4, 5), (3, 5), (3,)])
@pytest.mark.parametrize("num_slope", [1, 3])
def test_prelu(shape, num_slope):
    graph = one_layer("PReLU", shape, {0: num_slope}, {"slope": rand(2, num_slope)})
    compare(graph, {"data": rand(1, *shape)})


@pytest.mark.parametrize("shape", [(3, 4, 5), (3, 5), (3,)])
def test_batchnorm_scale_bias(shape):
    b = GraphBuilder()
    x = b.input("data", shape)
    y = b.layer("BatchNorm", [x], {0: 3, 1: 1e-3}, {"slope": rand(1, 3), "mean": rand(2, 3),
                                                    "var": rand(3, 3, low=0.1, high=2), "bias": rand(4, 3)})
    y = b.layer("Scale", [y], {0: 3, 1: 1}, {"scale": rand(5, 3), "bias": rand(6, 3)})
    b.layer("Bias", [y], {0: 3}, {"bias": rand(7, 3)})
    compare(b.build(), {"data": rand(0, *shape)})


def test_scale_from_second_input():
    b = GraphBuilder()
    x = b.input("data", (3, 4, 5))
    s = b.input("s", (3,))
    b.layer("Scale", [x, s], {0: -233})
    compare(b.build(), {"data": rand(0, 3, 4, 5), "s": rand(1, 3)})


SHAPES = [(2, 3, 4), (3, 4), (4,), (1,), (2, 1, 1), (2, 3, 1), (2, 1, 4), (1, 3, 4), (3, 1), (1, 4), (2,), (3,)]


@FEW
@given(op=st.integers(0, 18), a=st.sampled_from(SHAPES), b=st.sampled_from(SHAPES), seed=st.integers(0, 99))
def test_binaryop_broadcast(op, a, b, seed):
    def fits(s, t):  # ncnn's rule: lift the lower-rank operand, then sizes must match or be 1
        from ncnnc.backends.numpy.arith_ops import expand_for_binary
        s2, t2 = expand_for_binary(s, t), expand_for_binary(t, s)
        return all(x == y or x == 1 or y == 1 for x, y in zip(s2, t2))

    if not fits(a, b):
        return
    gb = GraphBuilder()
    xa, xb = gb.input("a", a), gb.input("b", b)
    gb.layer("BinaryOp", [xa, xb], {0: op})
    positive = op in (6, 9)
    low = 0.5 if positive else -2.0
    compare(gb.build(), {"a": rand(seed, *a, low=low, high=2), "b": rand(seed + 1, *b, low=low, high=2)})


@pytest.mark.parametrize("op", range(19))
def test_binaryop_scalar(op):
    graph = one_layer("BinaryOp", (2, 3, 4), {0: op, 1: 1, 2: 1.5})
    compare(graph, {"data": rand(0, 2, 3, 4, low=0.2, high=2)})


UNARY_DOMAINS = {25: (1.05, 3.0), 26: (-0.95, 0.95), 27: (-0.9, 2.5)}


@pytest.mark.parametrize("op", range(28))
def test_unaryop(op):
    low, high = (0.1, 0.9) if op in (5, 6, 8, 12, 13, 15, 17) else UNARY_DOMAINS.get(op, (-2.5, 2.5))
    x = rand(op, 2, 3, 4, low=low, high=high)
    if op == 18:
        x = np.round(x * 4) / 4 + 0.01  # avoid exact .5 ties whose rounding mode ncnn leaves to the CPU
    compare(one_layer("UnaryOp", (2, 3, 4), {0: op}), {"data": x})


@pytest.mark.parametrize("op,coeffs", [(0, None), (1, None), (1, [0.5, -2.0, 1.5]), (2, None)])
def test_eltwise(op, coeffs):
    b = GraphBuilder()
    xs = [b.input(f"x{i}", (2, 3, 4)) for i in range(3)]
    b.layer("Eltwise", xs, {0: op, **({1: coeffs} if coeffs else {})})
    compare(b.build(), {f"x{i}": rand(i, 2, 3, 4) for i in range(3)})


@pytest.mark.parametrize("shape", [(3, 4, 5), (4, 5), (5,)])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_concat_slice_softmax(shape, axis):
    if axis >= len(shape):
        return
    b = GraphBuilder()
    x, y = b.input("x", shape), b.input("y", shape)
    cat = b.layer("Concat", [x, y], {0: axis})
    b.layer("Slice", [cat], {0: [1, -233, -233], 1: axis}, outputs=3)
    b.layer("Slice", [cat], {2: [2, -1], 1: axis}, outputs=3)
    b.layer("Softmax", [cat], {0: axis, 1: 1})
    compare(b.build(), {"x": rand(0, *shape), "y": rand(1, *shape)})


CROPS = [
    ((3, 6, 7), {0: 1, 1: 2, 2: 1, 3: 4, 4: 3, 5: 2}),
    ((3, 6, 7), {0: 1, 1: 1, 2: 0, 3: -233, 4: -233, 5: -233, 6: 1, 7: 2, 8: 1}),
    ((3, 6, 7), {9: [1, -3], 10: [-1, 6], 11: [1, 2]}),
    ((3, 6, 7), {9: [1], 10: [3], 11: [0]}),
    ((6, 7), {0: 2, 1: 1, 3: 3, 4: 2}),
    ((9,), {0: 2, 3: 4}),
    ((9,), {9: [-4], 10: [-1]}),
]


@pytest.mark.parametrize("shape,params", CROPS)
def test_crop(shape, params):
    compare(one_layer("Crop", shape, params), {"data": rand(0, *shape)})


def test_crop_to_reference():
    b = GraphBuilder()
    x, ref = b.input("x", (4, 6, 7)), b.input("ref", (2, 3, 4))
    b.layer("Crop", [x, ref], {0: 1, 1: 2, 2: 1})
    compare(b.build(), {"x": rand(0, 4, 6, 7), "ref": rand(1, 2, 3, 4)})


RESHAPES = [
    ((2, 3, 4), {0: -1}), ((2, 3, 4), {0: 4, 1: -1}), ((2, 3, 4), {0: 2, 1: 6, 2: 2}),
    ((2, 3, 4), {0: 0, 1: -1, 2: 2}), ((24,), {0: 4, 1: 3, 2: 2}), ((6, 4), {0: 0, 1: 3, 2: -1}),
]


@pytest.mark.parametrize("shape,params", RESHAPES)
def test_reshape_flatten(shape, params):
    b = GraphBuilder()
    x = b.input("data", shape)
    b.layer("Reshape", [x], params)
    b.layer("Flatten", [x], {})
    compare(b.build(), {"data": rand(0, *shape)})


@pytest.mark.parametrize("shape,order", [((2, 3, 4), o) for o in range(6)] + [((3, 4), 0), ((3, 4), 1)])
def test_permute(shape, order):
    compare(one_layer("Permute", shape, {0: order}), {"data": rand(0, *shape)})


PADDINGS = [
    ((2, 4, 5), {0: 1, 1: 2, 2: 0, 3: 3, 5: 0.5}),
    ((2, 4, 5), {0: 1, 1: 1, 2: 2, 3: 1, 4: 1}),
    ((2, 4, 5), {0: 2, 1: 1, 2: 1, 3: 2, 4: 2}),
    ((2, 4, 5), {0: 1, 2: 1, 7: 1, 8: 2, 5: -1.0}),
    ((4, 5), {0: 1, 1: 2, 2: 1, 3: 0, 5: 2.0}),
    ((5,), {2: 2, 3: 1, 4: 1}),
]


@pytest.mark.parametrize("shape,params", PADDINGS)
def test_padding(shape, params):
    compare(one_layer("Padding", shape, params), {"data": rand(0, *shape)})


def test_padding_per_channel():
    graph = one_layer("Padding", (3, 4, 5), {0: 1, 1: 1, 2: 2, 3: 1, 6: 3}, {"per_channel_pad": rand(9, 3)})
    compare(graph, {"data": rand(0, 3, 4, 5)})


@pytest.mark.parametrize("group,reverse", [(2, 0), (3, 0), (2, 1), (3, 1)])
def test_shuffle_channel(group, reverse):
    compare(one_layer("ShuffleChannel", (6, 3, 4), {0: group, 1: reverse}), {"data": rand(0, 6, 3, 4)})


def test_split_noop_memorydata():
    b = GraphBuilder()
    x = b.input("data", (2, 3, 4))
    a, c = b.layer("Split", [x], {}, outputs=2)
    m = b.layer("MemoryData", [], {0: 4, 1: 3, 2: 2}, {"data": rand(5, 2, 3, 4)})
    n = b.layer("Noop", [a], {})
    b.layer("BinaryOp", [n, m], {0: 0})
    b.layer("BinaryOp", [c, m], {0: 2})
    compare(b.build(), {"data": rand(0, 2, 3, 4)})


@pytest.mark.parametrize("shape", [(4, 3, 5), (4, 6)])
@pytest.mark.parametrize("affine", [0, 1])
def test_group_instance_layer_norm(shape, affine):
    c = shape[0]
    gamma_beta = {"gamma": rand(1, c), "beta": rand(2, c)} if affine else {}
    b = GraphBuilder()
    x = b.input("data", shape)
    b.layer("GroupNorm", [x], {0: 2, 1: c, 2: 1e-4, 3: affine}, gamma_beta)
    if len(shape) == 3:
        b.layer("InstanceNorm", [x], {0: c, 1: 1e-4, 2: affine}, gamma_beta)
    w = shape[-1]
    b.layer("LayerNorm", [x], {0: w, 1: 1e-4, 2: affine},
            {"gamma": rand(3, w), "beta": rand(4, w)} if affine else {})
    if len(shape) == 3:
        hw = shape[1] * shape[2]
        b.layer("LayerNorm", [x], {0: hw, 1: 1e-4, 2: affine},
                {"gamma": rand(5, hw), "beta": rand(6, hw)} if affine else {})
    compare(b.build(), {"data": rand(0, *shape, low=-2, high=3)})


@FEW
@given(mode=st.integers(1, 3), by_size=st.booleans(), align=st.integers(0, 1), oh=st.integers(2, 12),
       ow=st.integers(2, 12), hs=st.sampled_from([0.5, 1.5, 2.0, 3.0]), seed=st.integers(0, 99))
def test_interp(mode, by_size, align, oh, ow, hs, seed):
    params = {0: mode, 6: align}
    params.update({3: oh, 4: ow} if by_size else {1: hs, 2: 2.0})
    compare(one_layer("Interp", (2, 5, 6), params), {"data": rand(seed, 2, 5, 6)})


@pytest.mark.parametrize("mode", [1, 2, 3])
def test_interp_1d_and_2d(mode):
    compare(one_layer("Interp", (3,), {0: mode, 3: 4, 4: 5}), {"data": rand(0, 3)})
    compare(one_layer("Interp", (4, 6), {0: mode, 2: 2.0}), {"data": rand(0, 4, 6)})


@pytest.mark.parametrize("op", range(12, 19))
def test_binaryop_modulo_family(op):
    """fmod, logaddexp, floor division and remainder (and their reversed forms) on many elements."""
    gb = GraphBuilder()
    xa, xb = gb.input("a", (3, 8, 9)), gb.input("b", (3, 8, 9))
    gb.layer("BinaryOp", [xa, xb], {0: op})
    b = rand(op + 1, 3, 8, 9, low=-3, high=3)
    b[np.abs(b) < 0.05] = 0.5
    compare(gb.build(), {"a": rand(op, 3, 8, 9, low=-3, high=3), "b": b})


REDUCE_SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 3, 4, 5)]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(op=st.integers(0, 10), shape=st.sampled_from(REDUCE_SHAPES), reduce_all=st.booleans(),
       axes=st.lists(st.integers(-4, 3), max_size=3), keepdims=st.integers(0, 1),
       coeff=st.sampled_from([1.0, 0.5, -2.0]), seed=st.integers(0, 99))
def test_reduction(op, shape, reduce_all, axes, keepdims, coeff, seed):
    dims = len(shape)
    axes = sorted({a % dims for a in axes if -dims <= a < dims})
    axes = [a - dims if a % 2 else a for a in axes]  # mix negative and positive spellings
    params = {0: op, 1: int(reduce_all), 2: coeff, 3: axes, 4: keepdims, 5: 1}
    # positive sums for log-sum, factors near 1 for the product
    low, high = {6: (0.7, 1.3), 9: (0.1, 1.0)}.get(op, (-2.0, 2.0))
    compare(one_layer("Reduction", shape, params), {"data": rand(seed, *shape, low=low, high=high)})


@pytest.mark.parametrize("op", [0, 3, 4, 8])
def test_reduction_without_axes_keeps_the_blob(op):
    compare(one_layer("Reduction", (2, 3, 4), {0: op, 1: 0, 3: [], 5: 1}), {"data": rand(op, 2, 3, 4)})


def test_reduction_old_axes_refused_like_the_runtime():
    graph = one_layer("Reduction", (2, 3, 4), {0: 0, 1: 0, 3: [1]})
    with pytest.raises(UnsupportedError, match="too old"):
        Interpreter(graph)
    with pytest.raises(NcnncError, match="too old"):  # the writer refuses what the runtime would not load
        run_graph(graph, {"data": rand(0, 2, 3, 4)})


CONV_ON_SMALL_BLOBS = [
    ("Convolution", (6,), {0: 4, 1: 1, 5: 1, 9: 2, 10: [0.1]}, 4 * 6),  # 1x1 on 1-D: InnerProduct path
    ("Convolution", (6,), {0: 4, 1: 3, 11: 1, 4: 1}, 4 * 3),
    ("Convolution", (5, 6), {0: 4, 1: 3, 4: -233, 5: 1, 9: 1}, 4 * 9),
    ("Convolution", (5, 6), {0: 3, 1: 1, 3: 2}, 3),
    ("ConvolutionDepthWise", (5, 6), {0: 2, 1: 3, 7: 1, 5: 1}, 2 * 9),
    ("ConvolutionDepthWise", (6,), {0: 3, 1: 3, 11: 1, 7: 1, 4: 1}, 3 * 3),  # 1x1 here: runtime reads garbage
    ("Deconvolution", (6,), {0: 4, 1: 3, 11: 1, 3: 2, 5: 1}, 4 * 3),
    ("Deconvolution", (5, 6), {0: 2, 1: 3, 3: 2, 4: 1}, 2 * 9),
    ("DeconvolutionDepthWise", (6,), {0: 2, 1: 1, 7: 1}, 2),
]


@pytest.mark.parametrize("ltype,shape,params,size", CONV_ON_SMALL_BLOBS)
def test_convolution_of_1d_and_2d_blobs(ltype, shape, params, size):
    weights = {"weight": rand(7, size)}
    if params.get(5):
        weights["bias"] = rand(8, params[0])
    graph = one_layer(ltype, shape, {**params, 6: size}, weights)
    compare(graph, {"data": rand(0, *shape)})


def test_convolution_1x1_of_mismatched_1d_blob_is_refused():
    graph = one_layer("Convolution", (6,), {0: 4, 1: 1, 6: 4 * 5}, {"weight": rand(0, 4 * 5)})
    with pytest.raises(UnsupportedError, match="1-D blob"):
        Interpreter(graph).run({"data": rand(0, 1, 6)})


@pytest.mark.parametrize("shape", [(1, 6), (4, 6)])
def test_innerproduct_rows_of_2d_blob(shape):
    graph = one_layer("InnerProduct", shape, {0: 3, 1: 1, 2: 18}, {"weight": rand(1, 18), "bias": rand(2, 3)})
    compare(graph, {"data": rand(0, *shape)})


@pytest.mark.parametrize("shape", [(7,), (5, 6)])
@pytest.mark.parametrize("params", [{4: 1}, {1: 2, 11: 1, 2: 2}, {1: 3, 11: 1, 2: 2, 3: 1, 5: 1},
                                    {1: 2, 11: 1, 2: 1, 5: 2}, {7: 1, 8: 3, 18: 2}])
@pytest.mark.parametrize("ptype", [0, 1])
def test_pooling_of_1d_and_2d_blobs(shape, params, ptype):
    """A 1-D blob is one row (windows one row high, top/bottom padding ignored), a 2-D blob one channel."""
    if len(shape) == 2 and 11 in params:
        params = {**params, 11: params[1]}
    compare(one_layer("Pooling", shape, {0: ptype, **params}), {"data": rand(0, *shape)})


@pytest.mark.parametrize("shape,params", [((2, 3, 4, 5), {0: 0, 4: 1}), ((7,), {0: 0, 1: 2, 2: 2})])
def test_pooling_refused_where_the_runtime_reads_outside_the_blob(shape, params):
    """4-D blobs (the runtime pools the first depth slice only) and 1-D blobs under a window two rows high."""
    with pytest.raises(UnsupportedError, match="D blob"):
        Interpreter(one_layer("Pooling", shape, params)).run({"data": rand(0, 1, *shape)})


@FEW
@given(ptype=st.integers(0, 1), include=st.integers(0, 1), k=st.integers(1, 3), stride=st.integers(1, 3),
       extra=st.integers(0, 2), mode=st.integers(0, 1), c=st.sampled_from([1, 3, 4, 8]), seed=st.integers(0, 99))
def test_pooling_windows_inside_the_padding(ptype, include, k, stride, extra, mode, c, seed):
    """Padding as large as the kernel or larger: windows of padding only give -FLT_MAX (max) and 0 or,
    without count_include_pad, NaN (average), in the same places as the runtime."""
    params = {0: ptype, 1: k, 2: stride, 3: k + extra, 5: mode, 6: include}
    compare(one_layer("Pooling", (c, 5, 6), params), {"data": rand(seed, c, 5, 6)})


SHAPE_4D = (2, 4, 5, 6)
CROPS_4D = [
    {0: 1, 1: 1, 13: 1, 2: 1, 3: 2, 4: 2, 14: 2, 5: 1},
    {0: 1, 13: 2, 3: 3, 14: 1, 4: -233, 5: -233},
    {0: 1, 1: 1, 13: 1, 2: 1, 3: -233, 4: -233, 14: -233, 5: -233, 6: 1, 7: 2, 15: 1, 8: 0},
    {9: [1, -3], 10: [2, -1], 11: [-3, 1]},
    {9: [1], 10: [-233], 11: [2]},
    {9: [0, 1, 1, 2], 10: [1, 3, 4, 5]},
]


@pytest.mark.parametrize("params", CROPS_4D)
def test_crop_4d(params):
    compare(one_layer("Crop", SHAPE_4D, params), {"data": rand(0, *SHAPE_4D)})


def test_crop_4d_to_reference():
    b = GraphBuilder()
    x, ref = b.input("x", SHAPE_4D), b.input("ref", (1, 2, 3, 4))
    b.layer("Crop", [x, ref], {0: 1, 1: 1, 13: 1, 2: 1})
    compare(b.build(), {"x": rand(0, *SHAPE_4D), "ref": rand(1, 1, 2, 3, 4)})
    b = GraphBuilder()
    x, ref = b.input("x", SHAPE_4D), b.input("ref", (2, 3, 4))
    b.layer("Crop", [x, ref], {0: 1})
    with pytest.raises(UnsupportedError, match="reference"):
        Interpreter(b.build()).run({"x": rand(0, 1, *SHAPE_4D), "ref": rand(1, 1, 2, 3, 4)})


PADDINGS_4D = [
    {0: 1, 1: 2, 2: 0, 3: 1, 7: 1, 8: 2, 5: -1.5},
    {0: 1, 1: 1, 2: 2, 3: 1, 7: 1, 8: 1, 4: 1},
    {0: 1, 1: 2, 2: 1, 3: 2, 7: 2, 8: 1, 4: 2},
]


@pytest.mark.parametrize("params", PADDINGS_4D)
def test_padding_4d(params):
    compare(one_layer("Padding", SHAPE_4D, params), {"data": rand(0, *SHAPE_4D)})


def test_padding_4d_per_channel():
    graph = one_layer("Padding", SHAPE_4D, {0: 1, 2: 1, 3: 2, 7: 1, 8: 1, 6: 2}, {"per_channel_pad": rand(3, 2)})
    compare(graph, {"data": rand(0, *SHAPE_4D)})


@pytest.mark.parametrize("order", range(24))
def test_permute_4d(order):
    compare(one_layer("Permute", SHAPE_4D, {0: order}), {"data": rand(order, *SHAPE_4D)})


@pytest.mark.parametrize("other", [(2,), (5,), (1,), (2, 3), (2, 3, 4), (2, 1, 4, 5), (1, 3, 1, 5), (2, 3, 4, 1)])
@pytest.mark.parametrize("swap", [False, True])
def test_binaryop_broadcast_4d(other, swap):
    gb = GraphBuilder()
    xa, xb = gb.input("a", (2, 3, 4, 5)), gb.input("b", other)
    gb.layer("BinaryOp", [xb, xa] if swap else [xa, xb], {0: 1})
    compare(gb.build(), {"a": rand(0, 2, 3, 4, 5), "b": rand(1, *other)})


@pytest.mark.parametrize("ltype,shape,params,weights", [
    ("Reduction", (2, 3, 4), {0: 3, 1: 0, 3: [0, 2], 4: 0, 5: 1}, {}),
    ("Reduction", (7,), {0: 8, 1: 1}, {}),
    ("Convolution", (6,), {0: 4, 1: 1, 6: 24}, {"weight": rand(0, 24)}),
    ("Pooling", (7,), {0: 1, 1: 3, 11: 1, 2: 2, 3: 1}, {}),
    ("Permute", SHAPE_4D, {0: 13}, {}),
])
def test_new_forms_batched_like_single(ltype, shape, params, weights):
    """A batch of three gives each sample's single-sample result (up to BLAS summation order)."""
    interp = Interpreter(one_layer(ltype, shape, params, weights))
    batch = rand(5, 3, *shape)
    out = next(iter(interp.run({"data": batch}).values()))
    for i in range(3):
        single = next(iter(interp.run({"data": batch[i: i + 1]}).values()))
        np.testing.assert_allclose(out[i: i + 1], single, rtol=1e-6, atol=1e-7)
