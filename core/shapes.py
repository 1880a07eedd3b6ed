"""Shape inference with ncnn's semantics, one small rule per layer type.

Shapes are numpy-order tuples without batch: ``(c, h, w)``, ``(h, w)``, ``(w,)`` or
``(c, d, h, w)`` — ncnn's ``dims`` is ``len(shape)``.  ``infer_shapes`` fills ``graph.shapes``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from ncnnc.core import shape_expr
from ncnnc.core.errors import GraphError, UnsupportedError
from ncnnc.core.ir import Graph, Layer
from ncnnc.core.resources import check_shape

Shape = tuple[int, ...]
ShapeRule = Callable[[Layer, list[Shape]], list[Shape]]
_RULES: dict[str, ShapeRule] = {}


def shape_rule(*types: str) -> Callable[[ShapeRule], ShapeRule]:
    """Register a shape rule for one or more layer types."""
    def register(fn: ShapeRule) -> ShapeRule:
        for t in types:
            _RULES[t] = fn
        return fn
    return register


def infer_shapes(graph: Graph, input_shapes: dict[str, Shape] | None = None) -> dict[str, Shape]:
    """Infer every blob's shape; ``input_shapes`` overrides (or supplies) the Input layers' shapes."""
    shapes: dict[str, Shape] = {}
    given = dict(input_shapes or {})
    for layer in graph.layers:
        if layer.type == "Input" and layer.outputs[0] in given:
            out = [tuple(given[layer.outputs[0]])]
        else:
            rule = _RULES.get(layer.type) or _plugin_rule(layer.type)
            if rule is None:
                from ncnnc.core.custom_layers import missing_plugin

                raise UnsupportedError(f"no shape rule for layer type {layer.type}{missing_plugin(layer.type)}",
                                       where=f"layer {layer.name}")
            try:
                out = rule(layer, [shapes[b] for b in layer.inputs])
            except KeyError as e:
                raise GraphError(f"shape of blob {e.args[0]!r} is unknown", where=f"layer {layer.name}") from None
            except (ArithmeticError, ValueError, TypeError, IndexError) as e:  # params the rule cannot size
                ins = ", ".join(str(list(shapes[b])) for b in layer.inputs)
                raise GraphError(f"cannot infer the output shape from input {ins} ({e})",
                                 where=f"layer {layer.name}") from None
        for blob, shape in zip(layer.outputs, out):
            shapes[blob] = tuple(int(s) for s in shape)
            check_shape(shapes[blob], f"blob {blob}", where=f"layer {layer.name}")
    graph.shapes = shapes
    return shapes


def _plugin_rule(layer_type: str) -> ShapeRule | None:
    """A custom layer's rule: loading the plugins registers their ``ncnnc_layer_implementations``."""
    from ncnnc.core.registry import registry

    registry()
    return _RULES.get(layer_type)


def _spatial(ins: Shape) -> tuple[int, int, int]:
    """(c, h, w) of a 3-D blob; 2-D/1-D blobs as ncnn treats them (h=1 / c=1)."""
    if len(ins) == 3:
        return ins[0], ins[1], ins[2]
    if len(ins) == 2:
        return 1, ins[0], ins[1]
    return 1, 1, ins[0]


def _same_pad(size: int, kernel: int, dilation: int, stride: int) -> int:
    extent = dilation * (kernel - 1) + 1
    out = (size + stride - 1) // stride
    return max((out - 1) * stride + extent - size, 0)


def _padded(layer: Layer, h: int, w: int, kh: int, kw: int, dh: int, dw: int, sh: int, sw: int,
            pad_ids: tuple[str, str, str, str]) -> tuple[int, int]:
    left, right, top, bottom = (layer.p(k) for k in pad_ids)
    if left in (-233, -234):
        return h + _same_pad(h, kh, dh, sh), w + _same_pad(w, kw, dw, sw)
    return h + top + bottom, w + left + right


@shape_rule("Input")
def _input(layer: Layer, ins: list[Shape]) -> list[Shape]:
    w, h, d, c = layer.p("w"), layer.p("h"), layer.p("d"), layer.p("c")
    dims = [x for x in (c, d, h, w) if x and x != -233]
    if not dims:
        raise GraphError("input shape unknown: give it (e.g. shape=[227,227,3])", where=f"layer {layer.name}")
    return [tuple(dims)]


class WindowError(GraphError):
    """A Convolution's or Pooling's window leaves no output on its padded input (the runtime's layer fails)."""


def _check_window(layer: Layer, oh: int, ow: int, kh: int, kw: int, hp: int, wp: int) -> None:
    """Raise :class:`WindowError` when a ``kh x kw`` window leaves no output on an ``hp x wp`` padded input."""
    if oh <= 0 or ow <= 0:
        raise WindowError(f"its {kw}x{kh} window (w x h) is larger than its padded input {wp}x{hp}",
                          where=f"layer {layer.name}")


@shape_rule("Convolution", "ConvolutionDepthWise")
def _conv(layer: Layer, ins: list[Shape]) -> list[Shape]:
    if len(ins[0]) == 1 and layer.type == "Convolution" and layer.p("kernel_w") == layer.p("kernel_h") == 1:
        return [(layer.p("num_output"),)]  # ncnn runs a 1x1 Convolution on a 1-D blob as an InnerProduct
    _, h, w = _spatial(ins[0])
    kw, kh = layer.p("kernel_w"), layer.p("kernel_h")
    dw, dh = layer.p("dilation_w"), layer.p("dilation_h")
    sw, sh = layer.p("stride_w"), layer.p("stride_h")
    hp, wp = _padded(layer, h, w, kh, kw, dh, dw, sh, sw, ("pad_left", "pad_right", "pad_top", "pad_bottom"))
    if len(ins[0]) == 1:
        hp = h  # ncnn pads a 1-D blob along w only
    oh = (hp - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wp - (dw * (kw - 1) + 1)) // sw + 1
    _check_window(layer, oh, ow, dh * (kh - 1) + 1, dw * (kw - 1) + 1, hp, wp)
    return [(layer.p("num_output"), oh, ow)]


@shape_rule("Deconvolution", "DeconvolutionDepthWise")
def _deconv(layer: Layer, ins: list[Shape]) -> list[Shape]:
    _, h, w = _spatial(ins[0])
    kw, kh = layer.p("kernel_w"), layer.p("kernel_h")
    dw, dh = layer.p("dilation_w"), layer.p("dilation_h")
    sw, sh = layer.p("stride_w"), layer.p("stride_h")
    full_w = (w - 1) * sw + dw * (kw - 1) + 1 + layer.p("output_pad_right")
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + layer.p("output_pad_bottom")
    if layer.p("output_w") > 0 and layer.p("output_h") > 0:
        return [(layer.p("num_output"), layer.p("output_h"), layer.p("output_w"))]
    left = layer.p("pad_left")
    if left in (-233, -234):
        ow, oh = w * sw, h * sh
    else:
        ow = full_w - left - layer.p("pad_right")
        oh = full_h - layer.p("pad_top") - layer.p("pad_bottom")
    return [(layer.p("num_output"), oh, ow)]


@shape_rule("InnerProduct")
def _innerproduct(layer: Layer, ins: list[Shape]) -> list[Shape]:
    if len(ins[0]) == 2 and layer.p("weight_data_size") // max(layer.p("num_output"), 1) == ins[0][1]:
        return [(ins[0][0], layer.p("num_output"))]
    return [(layer.p("num_output"),)]


@shape_rule("Pooling")
def _pooling(layer: Layer, ins: list[Shape]) -> list[Shape]:
    c, h, w = _spatial(ins[0])
    if layer.p("global_pooling"):
        return [(c,)]
    if layer.p("adaptive_pooling"):  # -233 keeps the input's size, as the runtime does
        out_h, out_w = layer.p("out_h"), layer.p("out_w")
        return [(c, h if out_h == -233 else out_h, w if out_w == -233 else out_w)]
    kw, kh = layer.p("kernel_w"), layer.p("kernel_h")
    sw, sh = layer.p("stride_w"), layer.p("stride_h")
    left, right, top, bottom = (layer.p(k) for k in ("pad_left", "pad_right", "pad_top", "pad_bottom"))
    if len(ins[0]) == 1:
        top = bottom = 0  # ncnn pads a 1-D blob along w only
    mode = layer.p("pad_mode")
    if mode == 0:  # full padding: caffe-style ceil, extra pad on right/bottom
        wtail, htail = (w + left + right - kw) % sw, (h + top + bottom - kh) % sh
        if wtail:
            right += sw - wtail
        if htail:
            bottom += sh - htail
    elif mode in (2, 3):  # tensorflow SAME
        wpad, hpad = kw + sw * ((w - 1) // sw) - w, kh + sh * ((h - 1) // sh) - h
        if wpad > 0 or hpad > 0:
            left, right = (wpad // 2, wpad - wpad // 2) if mode == 2 else (wpad - wpad // 2, wpad // 2)
            top, bottom = (hpad // 2, hpad - hpad // 2) if mode == 2 else (hpad - hpad // 2, hpad // 2)
        else:
            left = right = top = bottom = 0
    ow = (w + left + right - kw) // sw + 1
    oh = (h + top + bottom - kh) // sh + 1
    _check_window(layer, oh, ow, kh, kw, h + top + bottom, w + left + right)
    return [(c, oh, ow)]


@shape_rule("ReLU", "PReLU", "Clip", "Sigmoid", "TanH", "HardSigmoid", "HardSwish", "Swish", "Mish", "ELU",
            "SELU", "AbsVal", "BNLL", "Exp", "Log", "Power", "Threshold", "BatchNorm", "Scale", "Bias",
            "UnaryOp", "Softmax", "Dropout", "Noop", "GroupNorm", "InstanceNorm", "LayerNorm", "Normalize",
            "LRN", "Quantize", "Dequantize", "Requantize", "ShuffleChannel")
def _same(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [ins[0]] if ins else []  # an input-less Noop produces nothing with a known shape


@shape_rule("Split")
def _split(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [ins[0]] * len(layer.outputs)


def broadcast_shape(a: Shape, b: Shape) -> Shape:
    """ncnn BinaryOp's output shape: right-aligned numpy broadcasting, with ncnn's extra rule that a
    1-D ``b`` of size ``c`` broadcasts along the channel axis of a 3-D ``a``."""
    if len(a) != len(b) and min(len(a), len(b)) == 1:
        big, small = (a, b) if len(a) > len(b) else (b, a)
        if small[0] == big[0] or small[0] == 1:
            return big
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    return tuple(max(x, y) for x, y in zip(pa, pb))


@shape_rule("BinaryOp")
def _binaryop(layer: Layer, ins: list[Shape]) -> list[Shape]:
    if layer.p("with_scalar") or len(ins) == 1:
        return [ins[0]]
    return [broadcast_shape(ins[0], ins[1])]


@shape_rule("Eltwise")
def _eltwise(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [ins[0]]


@shape_rule("Concat")
def _concat(layer: Layer, ins: list[Shape]) -> list[Shape]:
    axis = layer.p("axis")
    axis = axis + len(ins[0]) if axis < 0 else axis
    out = list(ins[0])
    out[axis] = sum(s[axis] for s in ins)
    return [tuple(out)]


@shape_rule("Slice")
def _slice(layer: Layer, ins: list[Shape]) -> list[Shape]:
    axis = layer.p("axis")
    axis = axis + len(ins[0]) if axis < 0 else axis
    total = ins[0][axis]
    slices = layer.p("slices") or [-233] * len(layer.outputs)
    indices = layer.p("indices")
    sizes: list[int] = []
    if indices:
        bounds = [0, *[i if i >= 0 else total + i for i in indices], total]
        sizes = [bounds[i + 1] - bounds[i] for i in range(len(layer.outputs))]
    else:
        remaining, left = total, len(slices)
        for s in slices:
            size = (remaining // left) if s == -233 else s
            sizes.append(size)
            remaining -= size
            left -= 1
    outs = []
    for size in sizes:
        shape = list(ins[0])
        shape[axis] = size
        outs.append(tuple(shape))
    return outs


_CROP_AXES = {  # numpy axis order: (out size param, offset param, second offset param)
    4: (("outc", "coffset", "coffset2"), ("outd", "doffset", "doffset2"), ("outh", "hoffset", "hoffset2"),
        ("outw", "woffset", "woffset2")),
    3: (("outc", "coffset", "coffset2"), ("outh", "hoffset", "hoffset2"), ("outw", "woffset", "woffset2")),
    2: (("outh", "hoffset", "hoffset2"), ("outw", "woffset", "woffset2")),
    1: (("outw", "woffset", "woffset2"),),
}


@shape_rule("Crop")
def _crop(layer: Layer, ins: list[Shape]) -> list[Shape]:
    shape = list(ins[0])
    if len(ins) == 2:
        ref = ins[1]
        n = min(len(ref), len(shape))
        shape[len(shape) - n:] = ref[len(ref) - n:]
        return [tuple(shape)]
    starts, ends, axes = layer.p("starts"), layer.p("ends"), layer.p("axes")
    if starts:
        original = list(ins[0])
        axes = axes or list(range(len(starts)))
        for s, e, a in zip(starts, ends, axes):
            a = a + len(shape) if a < 0 else a
            size = original[a]
            s = max(0, s + size if s < 0 else min(s, size))
            e = size if e >= size or e == -233 else (e + size if e < 0 else e)
            shape[a] = max(e - s, 0)
        return [tuple(shape)]
    for i, (size_param, offset, offset2) in enumerate(_CROP_AXES[len(shape)]):
        want = layer.p(size_param)
        shape[i] = want if want > 0 else shape[i] - layer.p(offset) - layer.p(offset2)
    return [tuple(shape)]


def reshape_target(layer: Layer, ins: list[Shape]) -> tuple[int, int, int, int]:
    """Reshape's ``(w, h, d, c)`` targets (-233: no such axis), from ``6=`` shape expression if given."""
    if 6 not in layer.params:
        return layer.p("w"), layer.p("h"), layer.p("d"), layer.p("c")
    out = shape_expr.evaluate(str(layer.params[6]), ins, where=f"layer {layer.name}")
    if not 1 <= len(out) <= 4:
        raise GraphError(f"shape expression {layer.params[6]!r} gives {len(out)} sizes", where=f"layer {layer.name}")
    w, h, d, c = (out + [-233] * 3)[:4] if len(out) != 3 else (out[0], out[1], -233, out[2])
    return w, h, d, c


@shape_rule("Reshape")
def _reshape(layer: Layer, ins: list[Shape]) -> list[Shape]:
    total = math.prod(ins[0])
    w, h, d, c = reshape_target(layer, ins)
    if h == -233:
        dims = [w]
    elif d == -233 and c == -233:
        dims = [h, w]
    elif d == -233:
        dims = [c, h, w]
    else:
        dims = [c, d, h, w]
    ndim = len(ins[0])
    ncnn_in = list(reversed(ins[0]))  # w, h, (d), c order
    ncnn_out = list(reversed(dims))
    for i, v in enumerate(ncnn_out):
        if v == 0:
            ncnn_out[i] = ncnn_in[i] if i < ndim else 1
    known = math.prod(v for v in ncnn_out if v != -1)
    ncnn_out = [total // known if v == -1 else v for v in ncnn_out]
    return [tuple(reversed(ncnn_out))]


@shape_rule("Flatten")
def _flatten(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [(math.prod(ins[0]),)]


PERMUTES = {dims: list(itertools.permutations(range(dims))) for dims in (3, 4)}
"""ncnn Permute ``order_type`` -> output axes as indices into the input's numpy axes: the order types
number the permutations of ``(c, h, w)`` / ``(c, d, h, w)`` in lexicographic order."""


@shape_rule("Permute")
def _permute(layer: Layer, ins: list[Shape]) -> list[Shape]:
    shape = ins[0]
    order = layer.p("order_type")
    if len(shape) == 2:
        return [shape if order == 0 else (shape[1], shape[0])]
    if len(shape) in PERMUTES and order < len(PERMUTES[len(shape)]):
        return [tuple(shape[i] for i in PERMUTES[len(shape)][order])]
    raise UnsupportedError(f"Permute order {order} of a {len(shape)}-D blob", where=f"layer {layer.name}")


@shape_rule("Padding")
def _padding(layer: Layer, ins: list[Shape]) -> list[Shape]:
    shape = list(ins[0])
    shape[-1] += layer.p("left") + layer.p("right")
    if len(shape) >= 2:
        shape[-2] += layer.p("top") + layer.p("bottom")
    if len(shape) == 3:
        shape[0] += layer.p("front") + layer.p("behind")
    elif len(shape) == 4:
        shape[1] += layer.p("front") + layer.p("behind")  # front/behind pad depth on a 4-D blob
    return [tuple(shape)]


@shape_rule("Interp")
def _interp(layer: Layer, ins: list[Shape]) -> list[Shape]:
    if len(ins) == 2:
        return [(ins[0][0], ins[1][-2], ins[1][-1])]
    shape = ins[0]
    if len(shape) == 1:
        return [(shape[0], layer.p("output_height") or 1, layer.p("output_width") or 1)]
    c, h, w = _spatial(shape)
    oh, ow = layer.p("output_height"), layer.p("output_width")
    if not (oh and ow):
        oh, ow = int(h * layer.p("height_scale")), int(w * layer.p("width_scale"))
    return [(c, oh, ow) if len(shape) == 3 else (oh, ow)]


@shape_rule("MemoryData")
def _memorydata(layer: Layer, ins: list[Shape]) -> list[Shape]:
    dims = [x for x in (layer.p("c"), layer.p("d"), layer.p("h"), layer.p("w")) if x]
    return [tuple(dims) or (1,)]


@shape_rule("Reduction")
def _reduction(layer: Layer, ins: list[Shape]) -> list[Shape]:
    shape = ins[0]
    if layer.p("reduce_all") or len(shape) == 1:  # a 1-D blob is always reduced whole
        return [tuple(1 for _ in shape) if layer.p("keepdims") else (1,)]
    axes = {a + len(shape) if a < 0 else a for a in layer.p("axes")}
    if layer.p("keepdims"):
        return [tuple(1 if i in axes else s for i, s in enumerate(shape))]
    return [tuple(s for i, s in enumerate(shape) if i not in axes) or (1,)]


@shape_rule("ArgMax")
def _argmax(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [(2 if layer.p("out_max_val") else 1, layer.p("topk"))]  # ncnn: top_blob.create(topk, 1 or 2)


@shape_rule("Embed")
def _embed(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [(ins[0][-1], layer.p("num_output"))]


@shape_rule("RNN", "LSTM", "GRU")
def _recurrent(layer: Layer, ins: list[Shape]) -> list[Shape]:
    steps = ins[0][0] if len(ins[0]) == 2 else 1
    directions = 2 if layer.p("direction") == 2 else 1
    outs: list[Shape] = [(steps, layer.p("num_output") * directions)]
    for i, _ in enumerate(layer.outputs[1:]):  # final hidden state; LSTM's cell state has hidden_size
        size = layer.p("hidden_size") if layer.type == "LSTM" and i == 1 else layer.p("num_output")
        outs.append((directions, size))
    return outs


def _matrix(shape: Shape) -> tuple[int, int]:
    """(rows, cols) of a Gemm operand as ncnn reads it: rows are h (c for a 3-D blob), cols are w."""
    return (shape[0] if len(shape) > 1 else 1), shape[-1]


@shape_rule("Gemm")
def _gemm(layer: Layer, ins: list[Shape]) -> list[Shape]:
    blobs = iter(ins)
    if layer.p("constantA"):
        m = layer.p("constantM")
    else:
        rows, cols = _matrix(next(blobs))
        m = cols if layer.p("transA") else rows
    if layer.p("constantB"):
        n = layer.p("constantN")
    else:
        rows, cols = _matrix(next(blobs))
        n = rows if layer.p("transB") else cols
    out = (n, m) if layer.p("output_transpose") else (m, n)
    return [(out[0], 1, out[1]) if layer.p("output_N1M") else out]


def attention_inputs(layer: Layer) -> dict[str, int]:
    """Which input of a MultiHeadAttention / SDPA layer is which: indices of ``q``, ``k``, ``v`` and,
    when present, ``mask``, ``past_k``, ``past_v`` (ncnn's rules: MultiHeadAttention reuses ``q`` as
    ``k`` and ``v`` when given one blob, and ``k`` as ``v`` when given two)."""
    mask, kv = layer.p("attn_mask"), layer.p("kv_cache")
    count = len(layer.inputs) - mask - 2 * kv
    roles = {"q": 0, "k": min(1, count - 1), "v": min(2, count - 1)}
    if mask:
        roles["mask"] = count
    if kv:
        roles["past_k"], roles["past_v"] = count + mask, count + mask + 1
    return roles


@shape_rule("MultiHeadAttention")
def _multiheadattention(layer: Layer, ins: list[Shape]) -> list[Shape]:
    embed_dim, heads = layer.p("embed_dim"), layer.p("num_heads")
    out: list[Shape] = [(ins[0][0], layer.p("weight_data_size") // embed_dim)]
    if layer.p("kv_cache"):  # the caches are (heads, seqlen, embed_dim / heads), as the x86 runtime keeps them
        roles = attention_inputs(layer)
        past = ins[roles["past_k"]][-2]
        seqlen = past + ins[roles["k"]][0] if roles["k"] == 0 else past
        out += [(heads, seqlen, embed_dim // heads)] * 2
    return out


@shape_rule("SDPA")
def _sdpa(layer: Layer, ins: list[Shape]) -> list[Shape]:
    q, k, v = (s if len(s) == 3 else (1, *s) for s in ins[:3])
    out: list[Shape] = [(q[0], q[1], v[2])]
    if layer.p("kv_cache"):
        roles = attention_inputs(layer)
        seqlen = ins[roles["past_k"]][-2] + k[1]
        out += [(k[0], seqlen, k[2]), (v[0], seqlen, v[2])]
    return out


from ncnnc.core import shapes_nd  # noqa: E402,F401  (registers the 1-D/3-D and tensor types' rules)
from ncnnc.core.shapes_extra import DATA_DEPENDENT  # noqa: E402,F401  (registers the extra types' rules)
