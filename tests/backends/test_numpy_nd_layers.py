"""The numpy backend's 1-D / 3-D windows and tensor / activation types (core/layer_types_nd.py, Embed)
against the real ncnn runtime, parameters varied by hypothesis."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ncnnc.core.builder import GraphBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_numpy_layers import compare, one_layer, rand

FEW = settings(max_examples=10, deadline=None, derandomize=True)
ACTS = [{}, {9: 1}, {9: 2, 10: [0.1]}, {9: 3, 10: [-0.5, 0.5]}, {9: 4}]


@FEW
@given(group=st.sampled_from([1, 2]), cin_g=st.integers(1, 3), cout_g=st.integers(1, 3), k=st.integers(1, 3),
       stride=st.integers(1, 2), dil=st.integers(1, 2), left=st.integers(0, 2), right=st.integers(0, 2),
       bias=st.booleans(), act=st.integers(0, 4), w=st.integers(6, 11), seed=st.integers(0, 99))
def test_convolution_1d(group, cin_g, cout_g, k, stride, dil, left, right, bias, act, w, seed):
    cin, cout = group * cin_g, group * cout_g
    size = cout * cin_g * k
    weights = {"weight": rand(seed, size)} | ({"bias": rand(seed + 1, cout)} if bias else {})
    params = {0: cout, 1: k, 2: dil, 3: stride, 4: left, 15: right, 5: int(bias), 6: size, 18: 0.5, **ACTS[act]}
    ltype = "Convolution1D"
    if group > 1:
        ltype, params[7] = "ConvolutionDepthWise1D", group
    compare(one_layer(ltype, (cin, w), params, weights), {"data": rand(seed, cin, w)})


@FEW
@given(group=st.sampled_from([1, 2]), cin_g=st.integers(1, 2), cout_g=st.integers(1, 2),
       k=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2)), stride=st.integers(1, 2),
       dil=st.integers(1, 2), pad=st.tuples(*[st.integers(0, 1)] * 6), bias=st.booleans(), act=st.integers(0, 4),
       seed=st.integers(0, 99))
def test_convolution_3d(group, cin_g, cout_g, k, stride, dil, pad, bias, act, seed):
    cin, cout = group * cin_g, group * cout_g
    kd, kh, kw = k
    size = cout * cin_g * kd * kh * kw
    weights = {"weight": rand(seed, size)} | ({"bias": rand(seed + 1, cout)} if bias else {})
    params = {0: cout, 1: kw, 11: kh, 21: kd, 2: dil, 12: 1, 22: dil, 3: stride, 13: 1, 23: stride,
              4: pad[0], 15: pad[1], 14: pad[2], 16: pad[3], 24: pad[4], 17: pad[5],
              5: int(bias), 6: size, **ACTS[act]}
    ltype = "Convolution3D"
    if group > 1:
        ltype, params[7] = "ConvolutionDepthWise3D", group
    shape = (cin, 5, 6, 7)
    compare(one_layer(ltype, shape, params, weights), {"data": rand(seed, *shape)})


@FEW
@given(ptype=st.integers(0, 1), k=st.integers(1, 4), stride=st.integers(1, 3), pad=st.integers(0, 1),
       mode=st.integers(0, 3), include=st.integers(0, 1), w=st.integers(5, 12), seed=st.integers(0, 99))
def test_pooling_1d(ptype, k, stride, pad, mode, include, w, seed):
    assume(pad < k and (mode < 2 or k >= stride))  # see test_numpy_layers.test_pooling
    params = {0: ptype, 1: k, 2: stride, 3: pad, 5: mode, 6: include}
    compare(one_layer("Pooling1D", (3, w), params), {"data": rand(seed, 3, w)})


@FEW
@given(ptype=st.integers(0, 1), k=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
       stride=st.integers(1, 2), pad=st.integers(0, 1), mode=st.integers(0, 3), include=st.integers(0, 1),
       seed=st.integers(0, 99))
def test_pooling_3d(ptype, k, stride, pad, mode, include, seed):
    kd, kh, kw = k
    assume(pad < min(k) and (mode < 2 or min(k) >= stride))
    params = {0: ptype, 1: kw, 11: kh, 21: kd, 2: stride, 3: pad, 5: mode, 6: include}
    compare(one_layer("Pooling3D", (2, 5, 6, 7), params), {"data": rand(seed, 2, 5, 6, 7)})


@pytest.mark.parametrize("ltype,shape", [("Pooling1D", (3, 9)), ("Pooling3D", (2, 3, 4, 5))])
@pytest.mark.parametrize("ptype", [0, 1])
def test_global_pooling_nd(ltype, shape, ptype):
    compare(one_layer(ltype, shape, {0: ptype, 4: 1}), {"data": rand(2, *shape)})


@pytest.mark.parametrize("shape,repeats", [((5,), [3]), ((3, 4), [2, 1]), ((2, 3, 4), [1, 2, 3]),
                                           ((2, 3, 4, 5), [2, 1, 1, 2]), ((2, 3, 4), [2, 2])])
def test_tile(shape, repeats):
    compare(one_layer("Tile", shape, {2: repeats}), {"data": rand(0, *shape)})


@pytest.mark.parametrize("shape,axis,tiles", [((2, 3, 4), 0, 2), ((3, 4), 1, 3)])
def test_tile_axis(shape, axis, tiles):
    compare(one_layer("Tile", shape, {0: axis, 1: tiles}), {"data": rand(1, *shape)})


@pytest.mark.parametrize("a,b,trans", [((3, 4), (4, 5), 0), ((2, 3, 4), (2, 4, 5), 0), ((2, 3, 4), (4, 5), 0),
                                       ((2, 3, 4), (2, 5, 4), 1), ((2, 2, 3, 4), (2, 2, 4, 3), 0)])
def test_matmul(a, b, trans):
    builder = GraphBuilder()
    x, y = builder.input("a", a), builder.input("b", b)
    builder.layer("MatMul", [x, y], {0: trans})
    compare(builder.build(), {"a": rand(0, *a), "b": rand(1, *b)})


@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle(mode, r):
    shape = (2 * r * r, 3, 4)
    compare(one_layer("PixelShuffle", shape, {0: r, 1: mode}), {"data": rand(r, *shape)})


@pytest.mark.parametrize("shape,axis", [((6,), 0), ((4, 6), 1), ((4, 6), 0), ((2, 4, 6), -1), ((2, 4, 3, 2), 1)])
def test_glu(shape, axis):
    compare(one_layer("GLU", shape, {0: axis}), {"data": rand(0, *shape, low=-3, high=3)})


@pytest.mark.parametrize("ltype,params", [("Shrink", {}), ("Shrink", {0: 0.3, 1: 0.8}), ("Softplus", {}),
                                          ("CELU", {}), ("CELU", {0: 0.4}), ("Erf", {})])
@pytest.mark.parametrize("shape", [(3, 4, 5), (7,)])
def test_activations(ltype, params, shape):
    compare(one_layer(ltype, shape, params), {"data": rand(4, *shape, low=-3, high=3)})


@pytest.mark.parametrize("bias", [0, 1])
def test_embed_reads_int32_indices(bias):
    vocab, dim = 7, 5
    weights = {"weight": rand(0, vocab * dim)} | ({"bias": rand(1, dim)} if bias else {})
    graph = one_layer("Embed", (6,), {0: dim, 1: vocab, 2: bias, 3: vocab * dim}, weights)
    ids = np.array([0, 3, 6, 2, 9, -1], np.int32)  # out-of-range ids are clamped, as ncnn does
    compare(graph, {"data": ids.view(np.float32)})


@FEW
@given(rank=st.sampled_from([1, 3]), group=st.sampled_from([1, 2]), cin_g=st.integers(1, 2), cout_g=st.integers(1, 3),
       k=st.integers(1, 3), stride=st.integers(1, 2), dil=st.integers(1, 2), pad=st.integers(0, 1),
       out_pad=st.integers(0, 1), bias=st.booleans(), act=st.integers(0, 4), seed=st.integers(0, 99))
def test_deconvolution_nd(rank, group, cin_g, cout_g, k, stride, dil, pad, out_pad, bias, act, seed):
    assume(out_pad < stride)
    cin, cout = group * cin_g, group * cout_g
    size = cout * cin_g * k ** rank
    weights = {"weight": rand(seed, size)} | ({"bias": rand(seed + 1, cout)} if bias else {})
    geometry = {1: k, 2: dil, 3: stride, 4: pad, 18: out_pad}
    if rank == 3:
        geometry |= {11: k, 21: k, 12: dil, 22: dil, 13: stride, 23: stride}
    params = {0: cout, **geometry, 5: int(bias), 6: size, **ACTS[act]}
    ltype = f"Deconvolution{rank}D"
    if group > 1:
        ltype, params[7] = f"DeconvolutionDepthWise{rank}D", group
    shape = (cin, 6) if rank == 1 else (cin, 3, 4, 3)
    compare(one_layer(ltype, shape, params, weights), {"data": rand(seed, *shape)})
