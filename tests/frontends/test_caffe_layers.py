"""Every supported Caffe layer: a tiny NetParameter (prototxt + caffemodel written with the project's
schema) is converted, run in the real ncnn runtime, and compared with numpy code of Caffe's semantics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import run_graph
from ncnnc.frontends.caffe_reader import caffe_pb, load

RNG = np.random.default_rng(7)


# -- writing tiny Caffe models ----------------------------------------------------------------
def blob_proto(array: np.ndarray, legacy: bool = False):
    """A BlobProto holding ``array`` (``legacy``: num/channels/height/width instead of shape)."""
    bp = caffe_pb()["BlobProto"]()
    array = np.asarray(array, dtype=np.float32)
    if legacy:
        dims = [1] * (4 - array.ndim) + list(array.shape)
        bp.num, bp.channels, bp.height, bp.width = dims
    else:
        bp.shape.dim.extend(array.shape)
    bp.data.extend(array.ravel().tolist())
    return bp


def write_model(tmp_path: Path, body: str, inputs: dict[str, Sequence[int]],
                blobs: dict[str, list[np.ndarray]] | None = None, legacy_blobs: bool = False,
                v1: bool = False) -> tuple[Path, Path]:
    """Write ``net.prototxt`` (Input layers for ``inputs`` (c,h,w) + ``body``) and ``net.caffemodel``."""
    head = "".join(
        f'layer {{ name: "{name}" type: "Input" top: "{name}" '
        f'input_param {{ shape {{ dim: 1 {" ".join(f"dim: {d}" for d in shape)} }} }} }}\n'
        for name, shape in inputs.items())
    if v1:
        head = "".join(f'input: "{name}"\ninput_shape {{ dim: 1 {" ".join(f"dim: {d}" for d in shape)} }}\n'
                       for name, shape in inputs.items())
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text('name: "tiny"\n' + head + body)
    model = caffe_pb()["NetParameter"]()
    for name, arrays in (blobs or {}).items():
        layer = model.layers.add() if v1 else model.layer.add()
        layer.name = name
        layer.blobs.extend([blob_proto(a, legacy_blobs) for a in arrays])
    if not blobs:
        model.layer.add().name = "unused"
    caffemodel = tmp_path / "net.caffemodel"
    caffemodel.write_bytes(model.SerializeToString())
    return prototxt, caffemodel


def run_caffe(tmp_path: Path, body: str, inputs: dict[str, np.ndarray], blobs=None, outputs=("out",),
              **kw) -> dict[str, np.ndarray]:
    """Convert the tiny model and run it in the real ncnn runtime."""
    prototxt, caffemodel = write_model(tmp_path, body, {k: v.shape for k, v in inputs.items()}, blobs, **kw)
    graph = load(prototxt, caffemodel)
    return run_graph(graph, inputs, list(outputs))


def rand(*shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(np.float32)


def close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.size == want.size, (got.shape, want.shape)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-5)


# -- numpy references of Caffe's layers -------------------------------------------------------
def conv_ref(x, w, b, stride=(1, 1), pad=(0, 0), dil=(1, 1), group=1):
    x, w = x.astype(np.float64), w.astype(np.float64)
    _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dil
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    out = np.zeros((o, oh, ow))
    og = o // group
    for g in range(group):
        xs = xp[g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[g * og:(g + 1) * og] += np.einsum("oc,chw->ohw", w[g * og:(g + 1) * og, :, i, j], patch)
    return out + (0 if b is None else b[:, None, None])


def deconv_ref(x, w, b, stride=(1, 1), pad=(0, 0), dil=(1, 1), group=1):
    x, w = x.astype(np.float64), w.astype(np.float64)
    c, h, wd = x.shape
    _, og, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dil
    fh, fw = (h - 1) * sh + dh * (kh - 1) + 1, (wd - 1) * sw + dw * (kw - 1) + 1
    out = np.zeros((og * group, fh, fw))
    cg = c // group
    for g in range(group):
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("co,chw->ohw", w[g * cg:(g + 1) * cg, :, i, j], x[g * cg:(g + 1) * cg])
                out[g * og:(g + 1) * og, i * dh:i * dh + sh * (h - 1) + 1:sh,
                    j * dw:j * dw + sw * (wd - 1) + 1:sw] += contrib
    out = out[:, ph:fh - ph, pw:fw - pw]
    return out + (0 if b is None else b[:, None, None])


def pool_ref(x, kernel, stride, pad, mode, ceil=True):
    """Caffe's PoolingLayer (ceil or floor rounding, the last window starts inside the padded image)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    c, h, w = x.shape
    rnd = math.ceil if ceil else math.floor
    oh, ow = int(rnd((h + 2 * ph - kh) / sh)) + 1, int(rnd((w + 2 * pw - kw) / sw)) + 1
    if ph or pw:
        oh -= (oh - 1) * sh >= h + ph
        ow -= (ow - 1) * sw >= w + pw
    out = np.zeros((c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * sh - ph, j * sw - pw
            he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
            win = x[:, max(hs, 0):min(he, h), max(ws, 0):min(we, w)].astype(np.float64)
            out[:, i, j] = win.max((1, 2)) if mode == "MAX" else win.sum((1, 2)) / ((he - hs) * (we - ws))
    return out


def softmax_ref(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def lrn_across_ref(x, n, alpha, beta, k):
    sq = np.pad(x.astype(np.float64) ** 2, (((n - 1) // 2, n - 1 - (n - 1) // 2), (0, 0), (0, 0)))
    s = sum(sq[i:i + x.shape[0]] for i in range(n))
    return x * (k + alpha / n * s) ** -beta


def lrn_within_ref(x, n, alpha, beta):
    p = (n - 1) // 2
    sq = np.pad(x.astype(np.float64) ** 2, ((0, 0), (p, p), (p, p)))
    h, w = x.shape[1:]
    s = sum(sq[:, i:i + h, j:j + w] for i in range(n) for j in range(n))
    return x * (1 + alpha * s / (n * n)) ** -beta


# -- the cases --------------------------------------------------------------------------------
def _conv_case(param: str, weight_shape, group=1, stride=(1, 1), pad=(0, 0), dil=(1, 1), bias=True,
               ctype="Convolution"):
    def case(tmp_path):
        x = rand(4, 9, 11)
        w, b = rand(*weight_shape), rand(weight_shape[0])
        body = (f'layer {{ name: "conv" type: "{ctype}" bottom: "data" top: "out" '
                f'convolution_param {{ {param} }} }}')
        out = run_caffe(tmp_path, body, {"data": x}, {"conv": [w, b] if bias else [w]})["out"]
        close(out, conv_ref(x, w, b if bias else None, stride, pad, dil, group))
    return case


def _deconv_case(param: str, weight_shape, group=1, stride=(1, 1), pad=(0, 0), dil=(1, 1)):
    def case(tmp_path):
        x = rand(4, 5, 6)
        w = rand(*weight_shape)
        b = rand(weight_shape[1] * group)
        body = (f'layer {{ name: "deconv" type: "Deconvolution" bottom: "data" top: "out" '
                f'convolution_param {{ {param} }} }}')
        out = run_caffe(tmp_path, body, {"data": x}, {"deconv": [w, b]})["out"]
        close(out, deconv_ref(x, w, b, stride, pad, dil, group))
    return case


def _pool_case(param: str, kernel, stride, pad, mode, ceil=True, shape=(3, 9, 10)):
    def case(tmp_path):
        x = rand(*shape)
        body = (f'layer {{ name: "pool" type: "Pooling" bottom: "data" top: "out" '
                f'pooling_param {{ pool: {mode} {param} }} }}')
        close(run_caffe(tmp_path, body, {"data": x})["out"], pool_ref(x, kernel, stride, pad, mode, ceil))
    return case


def _unary_case(ltype: str, param: str, ref: Callable[[np.ndarray], np.ndarray], low=-2.0, blobs=()):
    def case(tmp_path):
        x = rand(3, 4, 5, low=low, high=2.0)
        body = f'layer {{ name: "op" type: "{ltype}" bottom: "data" top: "out" {param} }}'
        arrays = [np.asarray(b, np.float32) for b in blobs]
        out = run_caffe(tmp_path, body, {"data": x}, {"op": arrays} if arrays else None)["out"]
        close(out, ref(x))
    return case


SLOPES = np.array([0.1, -0.2, 0.3], np.float32)
MEAN, VAR = np.array([0.5, -1.0, 2.0], np.float32), np.array([1.5, 0.25, 4.0], np.float32)
SCALE, SHIFT = np.array([2.0, -0.5, 1.5], np.float32), np.array([0.1, 0.2, -0.3], np.float32)

CASES: dict[str, Callable[[Path], None]] = {
    "conv_3x3_stride2_pad1": _conv_case("num_output: 5 kernel_size: 3 stride: 2 pad: 1", (5, 4, 3, 3),
                                        stride=(2, 2), pad=(1, 1)),
    "conv_hw_kernel_stride_pad": _conv_case("num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 "
                                            "pad_h: 1 pad_w: 0", (6, 4, 3, 2), stride=(2, 1), pad=(1, 0)),
    "conv_2d_lists_dilation": _conv_case("num_output: 3 kernel_size: 3 kernel_size: 2 dilation: 2 pad: 2 pad: 1",
                                         (3, 4, 3, 2), pad=(2, 1), dil=(2, 2)),
    "conv_group2_no_bias": _conv_case("num_output: 6 kernel_size: 3 group: 2 bias_term: false",
                                      (6, 2, 3, 3), group=2, bias=False),
    "conv_depthwise_type": _conv_case("num_output: 4 kernel_size: 3 pad: 1", (4, 1, 3, 3), group=4, pad=(1, 1),
                                      ctype="DepthwiseConvolution"),
    "deconv_k4_s2_p1": _deconv_case("num_output: 3 kernel_size: 4 stride: 2 pad: 1", (4, 3, 4, 4),
                                    stride=(2, 2), pad=(1, 1)),
    "deconv_group2_dilation": _deconv_case("num_output: 4 kernel_size: 3 group: 2 dilation: 2",
                                           (4, 2, 3, 3), group=2, dil=(2, 2)),
    "pool_max_ceil_tail": _pool_case("kernel_size: 3 stride: 2", (3, 3), (2, 2), (0, 0), "MAX"),
    "pool_max_pad": _pool_case("kernel_size: 3 stride: 2 pad: 1", (3, 3), (2, 2), (1, 1), "MAX"),
    "pool_ave_ceil_tail": _pool_case("kernel_size: 3 stride: 2", (3, 3), (2, 2), (0, 0), "AVE"),
    "pool_ave_pad_and_tail": _pool_case("kernel_size: 3 stride: 2 pad: 1", (3, 3), (2, 2), (1, 1), "AVE",
                                        shape=(3, 8, 10)),
    "pool_ave_hw_pad": _pool_case("kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0",
                                  (3, 2), (1, 2), (1, 0), "AVE"),
    "pool_max_floor": _pool_case("kernel_size: 2 stride: 2 round_mode: FLOOR", (2, 2), (2, 2), (0, 0), "MAX",
                                 ceil=False, shape=(3, 9, 11)),
    "pool_global_ave": _unary_case("Pooling", "pooling_param { pool: AVE global_pooling: true }",
                                   lambda x: x.mean((1, 2))),
    "pool_global_max": _unary_case("Pooling", "pooling_param { pool: MAX global_pooling: true }",
                                   lambda x: x.max((1, 2))),
    "relu": _unary_case("ReLU", "", lambda x: np.maximum(x, 0)),
    "relu_negative_slope": _unary_case("ReLU", "relu_param { negative_slope: 0.1 }",
                                       lambda x: np.where(x > 0, x, 0.1 * x)),
    "prelu": _unary_case("PReLU", "", lambda x: np.where(x > 0, x, SLOPES[:, None, None] * x), blobs=[SLOPES]),
    "prelu_channel_shared": _unary_case("PReLU", "prelu_param { channel_shared: true }",
                                        lambda x: np.where(x > 0, x, 0.25 * x), blobs=[[0.25]]),
    "sigmoid": _unary_case("Sigmoid", "", lambda x: 1 / (1 + np.exp(-x))),
    "tanh": _unary_case("TanH", "", np.tanh),
    "elu": _unary_case("ELU", "elu_param { alpha: 0.7 }", lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    "power": _unary_case("Power", "power_param { power: 2 scale: 0.5 shift: 1 }", lambda x: (1 + 0.5 * x) ** 2),
    "power_sqrt": _unary_case("Power", "power_param { power: 0.5 scale: 2 shift: 0.5 }",
                              lambda x: (0.5 + 2 * x) ** 0.5, low=0.0),
    "batchnorm_scale_factor": _unary_case(
        "BatchNorm", "batch_norm_param { eps: 0.001 }",
        lambda x: (x - MEAN[:, None, None] / 2) / np.sqrt(VAR[:, None, None] / 2 + 0.001),
        blobs=[MEAN, VAR, [2.0]]),
    "batchnorm_two_blobs": _unary_case("BatchNorm", "",
                                       lambda x: (x - MEAN[:, None, None]) / np.sqrt(VAR[:, None, None] + 1e-5),
                                       blobs=[MEAN, VAR]),
    "scale_bias_term": _unary_case("Scale", "scale_param { bias_term: true }",
                                   lambda x: x * SCALE[:, None, None] + SHIFT[:, None, None], blobs=[SCALE, SHIFT]),
    "scale": _unary_case("Scale", "", lambda x: x * SCALE[:, None, None], blobs=[SCALE]),
    "bias": _unary_case("Bias", "", lambda x: x + SHIFT[:, None, None], blobs=[SHIFT]),
    "dropout": _unary_case("Dropout", "dropout_param { dropout_ratio: 0.3 }", lambda x: x),
    "dropout_no_scale_train": _unary_case("Dropout", "dropout_param { dropout_ratio: 0.25 scale_train: false }",
                                          lambda x: x * 0.75),
    "flatten": _unary_case("Flatten", "", lambda x: x.ravel()),
    "reshape_4d": _unary_case("Reshape", "reshape_param { shape { dim: 0 dim: 4 dim: -1 dim: 3 } }",
                              lambda x: x.reshape(4, -1, 3)),
    "reshape_2d": _unary_case("Reshape", "reshape_param { shape { dim: 1 dim: -1 } }", lambda x: x.ravel()),
    "softmax_channels": _unary_case("Softmax", "", lambda x: softmax_ref(x, 0)),
    "softmax_axis2": _unary_case("Softmax", "softmax_param { axis: 2 }", lambda x: softmax_ref(x, 1)),
    "softmax_axis_minus1": _unary_case("Softmax", "softmax_param { axis: -1 }", lambda x: softmax_ref(x, 2)),
    "lrn_across": _unary_case("LRN", "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }",
                              lambda x: lrn_across_ref(x, 3, 0.5, 0.75, 2.0)),
    "lrn_within": _unary_case("LRN", "lrn_param { local_size: 3 alpha: 0.4 beta: 0.6 norm_region: WITHIN_CHANNEL }",
                              lambda x: lrn_within_ref(x, 3, 0.4, 0.6)),
    "normalize_per_position": _unary_case(
        "Normalize", "norm_param { across_spatial: false channel_shared: false eps: 1e-6 }",
        lambda x: x / np.sqrt((x.astype(np.float64) ** 2).sum(0, keepdims=True) + 1e-6) * SCALE[:, None, None],
        blobs=[SCALE]),
    "normalize_across_spatial_shared": _unary_case(
        "Normalize", "norm_param { across_spatial: true channel_shared: true eps: 1e-6 }",
        lambda x: x / np.sqrt((x.astype(np.float64) ** 2).sum() + 1e-6) * 3.0, blobs=[[3.0]]),
    "permute_0231": _unary_case("Permute", "permute_param { order: 0 order: 2 order: 3 order: 1 }",
                                lambda x: x.transpose(1, 2, 0)),
    "permute_0312": _unary_case("Permute", "permute_param { order: 0 order: 3 order: 1 order: 2 }",
                                lambda x: x.transpose(2, 0, 1)),
    "permute_0132": _unary_case("Permute", "permute_param { order: 0 order: 1 order: 3 order: 2 }",
                                lambda x: x.transpose(0, 2, 1)),
}


def _shuffle(tmp_path: Path) -> None:
    x = rand(6, 3, 4)
    body = 'layer { name: "sc" type: "ShuffleChannel" bottom: "data" top: "out" shuffle_channel_param { group: 2 } }'
    close(run_caffe(tmp_path, body, {"data": x})["out"], x.reshape(2, 3, 3, 4).transpose(1, 0, 2, 3).reshape(6, 3, 4))


def _inner_product(tmp_path: Path) -> None:
    x, w, b = rand(3, 4, 5), rand(7, 60), rand(7)
    body = 'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "out" inner_product_param { num_output: 7 } }'
    close(run_caffe(tmp_path, body, {"data": x}, {"fc": [w, b]})["out"], w @ x.ravel() + b)


def _inner_product_transpose_no_bias(tmp_path: Path) -> None:
    x, w = rand(3, 4, 5), rand(60, 7)
    body = ('layer { name: "fc" type: "InnerProduct" bottom: "data" top: "out" '
            'inner_product_param { num_output: 7 bias_term: false transpose: true } }')
    close(run_caffe(tmp_path, body, {"data": x}, {"fc": [w]})["out"], x.ravel() @ w)


def _eltwise(op: str, coeffs: Sequence[float], ref: Callable) -> Callable[[Path], None]:
    def case(tmp_path: Path) -> None:
        a, b, c = rand(3, 4, 5), rand(3, 4, 5), rand(3, 4, 5)
        coeff = " ".join(f"coeff: {v}" for v in coeffs)
        body = (f'layer {{ name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "out" '
                f'eltwise_param {{ operation: {op} {coeff} }} }}')
        close(run_caffe(tmp_path, body, {"a": a, "b": b, "c": c})["out"], ref(a, b, c))
    return case


def _concat(axis: int) -> Callable[[Path], None]:
    def case(tmp_path: Path) -> None:
        a, b = rand(3, 4, 5), rand(3, 4, 5)
        body = (f'layer {{ name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "out" '
                f'concat_param {{ axis: {axis} }} }}')
        want = np.concatenate([a, b], axis - 1 if axis > 0 else axis)
        close(run_caffe(tmp_path, body, {"a": a, "b": b})["out"], want)
    return case


def _slice(tmp_path: Path) -> None:
    x = rand(6, 4, 5)
    body = ('layer { name: "s" type: "Slice" bottom: "data" top: "p" top: "q" top: "r" '
            'slice_param { axis: 1 slice_point: 1 slice_point: 4 } }')
    out = run_caffe(tmp_path, body, {"data": x}, outputs=("p", "q", "r"))
    for name, want in zip("pqr", (x[:1], x[1:4], x[4:])):
        close(out[name], want)


def _slice_equal_width(tmp_path: Path) -> None:
    x = rand(3, 4, 6)
    body = 'layer { name: "s" type: "Slice" bottom: "data" top: "p" top: "q" slice_param { axis: 3 } }'
    out = run_caffe(tmp_path, body, {"data": x}, outputs=("p", "q"))
    close(out["p"], x[:, :, :3])
    close(out["q"], x[:, :, 3:])


def _split(tmp_path: Path) -> None:
    x = rand(3, 4, 5)
    body = ('layer { name: "sp" type: "Split" bottom: "data" top: "p" top: "q" }\n'
            'layer { name: "tp" type: "TanH" bottom: "p" top: "tp" }\n'
            'layer { name: "sq" type: "Sigmoid" bottom: "q" top: "sq" }\n')
    out = run_caffe(tmp_path, body, {"data": x}, outputs=("tp", "sq"))
    close(out["tp"], np.tanh(x))
    close(out["sq"], 1 / (1 + np.exp(-x)))


def _crop(axis: int, offsets: Sequence[int], ref_shape: Sequence[int]) -> Callable[[Path], None]:
    def case(tmp_path: Path) -> None:
        x, ref = rand(5, 8, 9), rand(*ref_shape)
        offs = " ".join(f"offset: {o}" for o in offsets)
        body = (f'layer {{ name: "crop" type: "Crop" bottom: "data" bottom: "ref" top: "out" '
                f'crop_param {{ axis: {axis} {offs} }} }}')
        full = list(offsets) * (4 - axis) if len(offsets) == 1 else list(offsets)
        start = [0] * (axis - 1) + full
        shape = list(x.shape[:axis - 1]) + list(ref_shape[axis - 1:])
        want = x[tuple(slice(s, s + n) for s, n in zip(start, shape))]
        close(run_caffe(tmp_path, body, {"data": x, "ref": ref})["out"], want)
    return case


def _scale_second_input(tmp_path: Path) -> None:
    x, s = rand(3, 4, 5), rand(3)
    body = 'layer { name: "sc" type: "Scale" bottom: "data" bottom: "s" top: "out" }'
    close(run_caffe(tmp_path, body, {"data": x, "s": s})["out"], x * s[:, None, None])


CASES.update({
    "shuffle_channel": _shuffle,
    "inner_product": _inner_product,
    "inner_product_transpose_no_bias": _inner_product_transpose_no_bias,
    "eltwise_sum_coeffs": _eltwise("SUM", (0.5, -2.0, 1.5), lambda a, b, c: 0.5 * a - 2 * b + 1.5 * c),
    "eltwise_sum": _eltwise("SUM", (), lambda a, b, c: a + b + c),
    "eltwise_prod": _eltwise("PROD", (), lambda a, b, c: a * b * c),
    "eltwise_max": _eltwise("MAX", (), lambda a, b, c: np.maximum(np.maximum(a, b), c)),
    "concat_channels": _concat(1),
    "concat_height": _concat(2),
    "concat_last_axis": _concat(-1),
    "slice_points": _slice,
    "slice_equal_width": _slice_equal_width,
    "split": _split,
    "crop_axis2_one_offset": _crop(2, [2], (5, 4, 6)),
    "crop_axis2_reference_with_other_channels": _crop(2, [1], (21, 4, 6)),
    "crop_axis2_two_offsets": _crop(2, [1, 3], (5, 5, 4)),
    "crop_axis1": _crop(1, [1, 2, 3], (3, 4, 5)),
    "scale_second_input": _scale_second_input,
})


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_matches_caffe_semantics(name: str, tmp_path: Path) -> None:
    CASES[name](tmp_path)
