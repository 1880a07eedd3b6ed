"""Slice, Crop, Flatten, Reshape, Permute and ShuffleChannel compiled by the LLVM backend: pure data
movement, so bit-identical (atol=0) to the numpy simulation, for float and int8 blobs, dense and
strided input and output views."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncnnc.backends.llvm.lower import lower
from ncnnc.backends.llvm.targets import resolve
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Weight

from .harness import assert_matches, run_jit, simulate

SIZES = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 12])


def _check(build, shape, strided_in: bool, int8: bool, strided_out: bool, seed: int = 0):
    """``build(b, x)`` adds the layer(s) under test to ``x`` and returns the blob to check.

    ``strided_in``: ``x`` is the second part of a channel Slice of a wider input (a strided view);
    ``int8``: a Quantize first, so the layers move int8; ``strided_out``: the result is concatenated
    along channels with another blob of its shape (when 3-D), so it is written into a strided view."""
    b = GraphBuilder()
    extra = 3 if strided_in and len(shape) == 3 else 0
    in_shape = (shape[0] + extra, *shape[1:])
    x = b.input("data", in_shape)
    if int8:
        x = b.layer("Quantize", [x], {"scale_data_size": 1}, {"scale": Weight(np.float32([9.0]), "raw")})
    if extra:
        first, x = b.layer("Slice", [x], {"slices": [extra, -233], "axis": 0}, outputs=2)
        b.layer("Noop", [first], name="rest")
    y = build(b, x)
    graph = b.build()
    if strided_out:
        from ncnnc.core.shapes import infer_shapes

        out_shape = infer_shapes(graph)[y]
        if len(out_shape) == 3:
            # the same shape again, from the same input (a copy), so both parts land in one buffer
            b.layer("Concat", [y, b.layer("Noop", [build(b, x)])], {"axis": 0}, name="cat")
            graph = b.build()
    rng = np.random.default_rng(seed)
    data = {"data": rng.normal(0, 5, in_shape).astype(np.float32)}
    got, want = run_jit(graph, data), simulate(graph, data)
    assert_matches(got, want)
    return graph


@st.composite
def blob_shapes(draw, min_dims=1):
    dims = draw(st.integers(min_dims, 3))
    return tuple(draw(SIZES) for _ in range(dims))


FLAGS = dict(strided_in=st.booleans(), int8=st.booleans(), strided_out=st.booleans(), seed=st.integers(0, 99))


@settings(max_examples=40, deadline=None)
@given(shape=blob_shapes(), data=st.data(), **FLAGS)
def test_slice(shape, data, strided_in, int8, strided_out, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    count = data.draw(st.integers(1, min(n, 3)))
    cuts = sorted(data.draw(st.lists(st.integers(0, n), min_size=count - 1, max_size=count - 1)))
    if cuts and data.draw(st.booleans()):
        params = {"indices": cuts, "axis": axis}
    else:
        params = {"slices": [-233] * count, "axis": axis}
    parts = count

    def build(b, x):
        outs = b.layer("Slice", [x], params, outputs=parts)
        outs = [outs] if isinstance(outs, str) else outs
        for o in outs[1:]:
            b.layer("Noop", [o])
        return outs[0]

    _check(build, shape, strided_in, int8, strided_out, seed)


def test_slice_views_cost_nothing():
    """Channel and row slices of a 3-D blob are views (no step); a slice along w is a copy."""
    for axis, copies in [(0, 0), (1, 0), (2, 2)]:
        b = GraphBuilder()
        x = b.input("data", (4, 6, 5))
        parts = b.layer("Slice", [x], {"slices": [-233, -233], "axis": axis}, outputs=2)
        for p in parts:
            b.layer("ReLU", [p])
        program = lower(b.build(), resolve("host"))
        assert sum(s.kind == "crop" for s in program.steps) == copies, (axis, [s.kind for s in program.steps])


@settings(max_examples=40, deadline=None)
@given(shape=blob_shapes(), data=st.data(), **FLAGS)
def test_reshape_and_flatten(shape, data, strided_in, int8, strided_out, seed):
    total = int(np.prod(shape))
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    kind = data.draw(st.sampled_from(["flatten", "1d", "2d", "3d", "keep"]))
    if kind == "flatten":
        params = None
    elif kind == "1d":
        params = {"w": data.draw(st.sampled_from([-1, total]))}
    elif kind == "2d":
        h = data.draw(st.sampled_from(divisors))
        params = {"w": -1, "h": h}
    elif kind == "3d":
        c = data.draw(st.sampled_from(divisors))
        h = data.draw(st.sampled_from([d for d in divisors if (total // c) % d == 0]))
        params = {"w": total // c // h, "h": h, "c": -1 if data.draw(st.booleans()) else c}
    else:  # 0 keeps the input's own w / h / c
        params = {"w": 0, "h": -1, "c": 0} if len(shape) == 3 else {"w": 0, "h": -1}

    def build(b, x):
        return b.layer("Flatten", [x]) if params is None else b.layer("Reshape", [x], params)

    _check(build, shape, strided_in, int8, strided_out, seed)


def test_reshape_views_when_memory_order_is_unchanged():
    """(c,1,1) <-> (c,), (1,h,w) <-> (h,w) and (c,h,w) -> (c,h*w,1) are views; (c,h,w) -> (c*h*w,) is a gather."""
    cases = [((8, 1, 1), {"w": 8}, 0), ((8,), {"w": 1, "h": 1, "c": 8}, 0), ((1, 3, 4), {"w": 4, "h": 3}, 0),
             ((6, 3, 4), {"w": 1, "h": 12, "c": 6}, 0), ((6, 3, 4), {"w": -1}, 1),
             ((6, 12), {"w": 4, "h": 3, "c": 6}, 1)]
    for shape, params, gathers in cases:
        b = GraphBuilder()
        x = b.input("data", shape)
        b.layer("ReLU", [b.layer("Reshape", [x], params)])
        program = lower(b.build(), resolve("host"))
        assert sum(s.kind == "reshape" for s in program.steps) == gathers, (shape, params)


def test_reshape_refuses_permute_flag():
    from ncnnc.core.errors import UnsupportedError

    b = GraphBuilder()
    x = b.input("data", (2, 3, 4))
    b.layer("Reshape", [x], {"w": -1, "permute": 1}, name="r")
    with pytest.raises(UnsupportedError, match="permute"):
        run_jit(b.build(), {"data": np.zeros((2, 3, 4), np.float32)})


@settings(max_examples=40, deadline=None)
@given(shape=blob_shapes(min_dims=2), order=st.integers(0, 5), **FLAGS)
def test_permute(shape, order, strided_in, int8, strided_out, seed):
    if len(shape) == 2:
        order %= 2

    def build(b, x):
        return b.layer("Permute", [x], {"order_type": order})

    _check(build, shape, strided_in, int8, strided_out, seed)


@settings(max_examples=40, deadline=None)
@given(shape=blob_shapes(), data=st.data(), **FLAGS)
def test_shuffle_channel(shape, data, strided_in, int8, strided_out, seed):
    c = shape[0]
    group = data.draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    reverse = data.draw(st.booleans())

    def build(b, x):
        return b.layer("ShuffleChannel", [x], {"group": group, "reverse": int(reverse)})

    _check(build, shape, strided_in, int8, strided_out, seed)


@settings(max_examples=40, deadline=None)
@given(shape=blob_shapes(), data=st.data(), **FLAGS)
def test_crop(shape, data, strided_in, int8, strided_out, seed):
    dims = len(shape)
    offsets = [data.draw(st.integers(0, n - 1)) for n in shape]
    sizes = [data.draw(st.integers(1, n - o)) for n, o in zip(shape, offsets)]
    keys = ("c", "h", "w")[3 - dims:]
    if data.draw(st.booleans()):  # offsets and out sizes
        params = {}
        for k, o, s in zip(keys, offsets, sizes):
            params[f"{k}offset"] = o
            params[f"out{k}"] = s
    else:  # numpy-style starts / ends / axes
        params = {"starts": offsets, "ends": [o + s for o, s in zip(offsets, sizes)], "axes": list(range(dims))}

    def build(b, x):
        return b.layer("Crop", [x], params)

    _check(build, shape, strided_in, int8, strided_out, seed)


def test_crop_to_reference_shape():
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("data", (6, 7, 9))
    ref = b.input("ref", (2, 4, 5))
    b.layer("Crop", [x, ref], {"woffset": 2, "hoffset": 1, "coffset": 3}, name="crop")
    graph = b.build()
    data = {"data": rng.normal(size=(6, 7, 9)).astype(np.float32), "ref": np.zeros((2, 4, 5), np.float32)}
    assert_matches(run_jit(graph, data), simulate(graph, data))
