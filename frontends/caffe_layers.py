"""Caffe layer -> ncnn layer(s): one small converter per Caffe layer type.

Each converter gets a :class:`CaffeLayer` whose ``bottoms``/``tops`` are already the ncnn blob names
(in-place layers renamed, split suffixes applied) and returns the ncnn layers that compute it.
Parameter ids, the order they are written in and the weight layouts follow ncnn's ``caffe2ncnn``
(tools/caffe/caffe2ncnn.cpp); where ``caffe2ncnn`` departs from Caffe's own semantics the converter
follows Caffe (average pooling with padding, 2-d kernel/stride/pad lists, Inner Product transpose).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ncnnc.core.errors import ModelFormatError, UnsupportedError
from ncnnc.core.ir import Layer, Weight
from ncnnc.core.params import ParamDict, ParamValue
from ncnnc.core.validate import params_problem


@dataclass
class CaffeLayer:
    """One Caffe layer, wired to ncnn blob names, with its weight blobs from the caffemodel."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    msg: Any
    blobs: list[np.ndarray] = field(default_factory=list)
    fresh: Callable[[str], str] = str
    model_path: str | None = None

    def param(self, name: str) -> Any:
        """A ``*_param`` sub-message (the same message type in the V1 and current forms)."""
        return getattr(self.msg, name)

    def has_param(self, name: str) -> bool:
        """Whether the layer sets a ``*_param`` sub-message at all."""
        return name in {f.name for f, _ in self.msg.ListFields()}

    def blob(self, index: int, what: str) -> np.ndarray:
        """Weight blob ``index`` (a user error naming ``what`` when the caffemodel lacks it)."""
        if index >= len(self.blobs):
            raise ModelFormatError(f"the caffemodel has no blob #{index} ({what}) for this layer "
                                   f"({len(self.blobs)} blobs)", self.model_path, f"layer {self.name}")
        return self.blobs[index]

    def unsupported(self, what: str) -> UnsupportedError:
        """A one-line error about a Caffe setting ncnn cannot express."""
        return UnsupportedError(f"{self.type}: {what} is not supported", where=f"layer {self.name}")


Converter = Callable[[CaffeLayer], list[Layer]]
CONVERTERS: dict[str, Converter] = {}


def converter(*caffe_types: str) -> Callable[[Converter], Converter]:
    """Register a converter for one or more Caffe layer type names."""
    def register(fn: Converter) -> Converter:
        for t in caffe_types:
            CONVERTERS[t] = fn
        return fn
    return register


def ncnn_layer(cl: CaffeLayer, ltype: str, params: dict[int, ParamValue] | None = None,
               weights: dict[str, np.ndarray] | None = None, name: str | None = None,
               inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None) -> Layer:
    """An ncnn layer with weights stored as ncnn loads them (tagged fp32 or raw fp32)."""
    layer = Layer(ltype, name or cl.name, list(cl.bottoms if inputs is None else inputs),
                  list(cl.tops if outputs is None else outputs), ParamDict(ltype, params or {}))
    problem = params_problem(layer)  # ncnn's rules before the params size any weights
    if problem:
        raise ModelFormatError(problem, None, f"layer {cl.name}")  # the caller names the prototxt
    weights = weights or {}
    for spec in layer.weight_specs():
        data = np.asarray(weights[spec.name], dtype=np.float32)
        if data.size != spec.count:
            raise ModelFormatError(f"blob for {spec.name} has {data.size} values, expected {spec.count}",
                                   cl.model_path, f"layer {cl.name}")
        layer.weights[spec.name] = Weight(data.reshape(spec.logical_shape()),
                                          "fp32" if spec.load_type == 0 else "raw")
    return layer


def _f(value: float) -> float:
    """A proto float field's value as the float32 Caffe holds."""
    return float(np.float32(value))


def _axis(cl: CaffeLayer, axis: int) -> int:
    """A Caffe axis (with batch) as an ncnn axis (without): positive axes shift by one."""
    if axis == 0:
        raise cl.unsupported("an operation along the batch axis")
    return axis - 1 if axis > 0 else axis


def _pair(cl: CaffeLayer, values: Sequence[int], default: int, what: str) -> tuple[int, int]:
    """A Caffe repeated spatial value (none, one, or h then w) as ``(h, w)``."""
    values = list(values)
    if not values:
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise cl.unsupported(f"{len(values)}-d {what} (only 2-d)")


def _geometry_params(kh: int, kw: int, dh: int, dw: int, sh: int, sw: int, ph: int, pw: int) -> dict[int, int]:
    """Convolution-style ids in caffe2ncnn's order; the ``_h`` ids only where h differs from w."""
    p = {1: kw}
    if kh != kw:
        p[11] = kh
    p[2] = dw
    if dh != dw:
        p[12] = dh
    p[3] = sw
    if sh != sw:
        p[13] = sh
    p[4] = pw
    if ph != pw:
        p[14] = ph
    return p


def _conv_geometry(cl: CaffeLayer) -> tuple[int, ...]:
    cp = cl.param("convolution_param")
    if cp.axis != 1:
        raise cl.unsupported(f"axis {cp.axis}")
    if cp.HasField("kernel_h") or cp.HasField("kernel_w"):
        if not (cp.HasField("kernel_h") and cp.HasField("kernel_w")):
            raise ModelFormatError("kernel_h and kernel_w must be given together", where=f"layer {cl.name}")
        kh, kw = cp.kernel_h, cp.kernel_w
    else:
        if not cp.kernel_size:
            raise ModelFormatError("no kernel_size", where=f"layer {cl.name}")
        kh, kw = _pair(cl, cp.kernel_size, 1, "kernel")
    if cp.HasField("stride_h") or cp.HasField("stride_w"):
        sh, sw = cp.stride_h or 1, cp.stride_w or 1
    else:
        sh, sw = _pair(cl, cp.stride, 1, "stride")
    if cp.HasField("pad_h") or cp.HasField("pad_w"):
        ph, pw = cp.pad_h, cp.pad_w
    else:
        ph, pw = _pair(cl, cp.pad, 0, "pad")
    dh, dw = _pair(cl, cp.dilation, 1, "dilation")
    return kh, kw, dh, dw, sh, sw, ph, pw


@converter("Convolution", "ConvolutionDepthwise", "DepthwiseConvolution")
def _convolution(cl: CaffeLayer) -> list[Layer]:
    cp = cl.param("convolution_param")
    group = cp.num_output if cl.type != "Convolution" else cp.group
    weight = cl.blob(0, "weights")
    params: dict[int, ParamValue] = {0: cp.num_output, **_geometry_params(*_conv_geometry(cl)),
                                     5: int(cp.bias_term), 6: int(weight.size)}
    weights = {"weight": weight}
    if cp.bias_term:
        weights["bias"] = cl.blob(1, "bias")
    if group != 1:
        params[7] = group
        return [ncnn_layer(cl, "ConvolutionDepthWise", params, weights)]
    return [ncnn_layer(cl, "Convolution", params, weights)]


@converter("Deconvolution")
def _deconvolution(cl: CaffeLayer) -> list[Layer]:
    cp = cl.param("convolution_param")
    kh, kw, *_ = geometry = _conv_geometry(cl)
    weight = cl.blob(0, "weights")
    group = cp.group
    params: dict[int, ParamValue] = {0: cp.num_output, **_geometry_params(*geometry),
                                     5: int(cp.bias_term), 6: int(weight.size)}
    # Caffe keeps (group, in/group, out/group, kh, kw); ncnn reads (group, out/group, in/group, kh, kw).
    out_g = cp.num_output // max(group, 1)
    in_g = weight.size // (kh * kw * max(out_g, 1) * max(group, 1))
    if group * in_g * out_g * kh * kw != weight.size:
        raise ModelFormatError(f"weight blob of {weight.size} values does not fit num_output "
                               f"{cp.num_output}, group {group}, kernel {kh}x{kw}", cl.model_path, f"layer {cl.name}")
    reordered = weight.reshape(group, in_g, out_g, kh * kw).transpose(0, 2, 1, 3)
    weights = {"weight": reordered}
    if cp.bias_term:
        weights["bias"] = cl.blob(1, "bias")
    if group != 1:
        params[7] = group
        return [ncnn_layer(cl, "DeconvolutionDepthWise", params, weights)]
    return [ncnn_layer(cl, "Deconvolution", params, weights)]


@converter("InnerProduct")
def _inner_product(cl: CaffeLayer) -> list[Layer]:
    ip = cl.param("inner_product_param")
    if ip.axis != 1:
        raise cl.unsupported(f"axis {ip.axis}")
    weight = cl.blob(0, "weights")
    n = ip.num_output
    if n <= 0 or weight.size % n:
        raise ModelFormatError(f"weight blob of {weight.size} values does not fit num_output {n}",
                               cl.model_path, f"layer {cl.name}")
    if ip.transpose:
        weight = weight.reshape(weight.size // n, n).T
    weights = {"weight": weight}
    if ip.bias_term:
        weights["bias"] = cl.blob(1, "bias")
    return [ncnn_layer(cl, "InnerProduct", {0: n, 1: int(ip.bias_term), 2: int(weight.size)}, weights)]


@converter("Pooling")
def _pooling(cl: CaffeLayer) -> list[Layer]:
    pp = cl.param("pooling_param")
    if pp.pool not in (0, 1):
        raise cl.unsupported("STOCHASTIC pooling")
    if pp.global_pooling:
        return [ncnn_layer(cl, "Pooling", {0: pp.pool, 1: 0, 2: 1, 3: 0, 4: 1})]
    if pp.HasField("kernel_h") or pp.HasField("kernel_w"):
        kh, kw = pp.kernel_h, pp.kernel_w
    elif pp.HasField("kernel_size"):
        kh = kw = pp.kernel_size
    else:
        raise ModelFormatError("no kernel_size", where=f"layer {cl.name}")
    sh, sw = (pp.stride_h, pp.stride_w) if pp.HasField("stride_h") or pp.HasField("stride_w") \
        else (pp.stride, pp.stride)
    ph, pw = (pp.pad_h, pp.pad_w) if pp.HasField("pad_h") or pp.HasField("pad_w") else (pp.pad, pp.pad)
    params: dict[int, ParamValue] = {0: pp.pool, 1: kw}
    if kh != kw:
        params[11] = kh
    params[2] = sw
    if sh != sw:
        params[12] = sh
    layers = []
    inputs = cl.bottoms
    if pp.pool == 1 and (ph or pw):
        # Caffe's average divides by the window clipped to the padded image: pad explicitly with
        # zeros, then let ncnn exclude only the rounding tail from the count.
        padded = cl.fresh(f"{cl.tops[0]}_pad")
        layers.append(ncnn_layer(cl, "Padding", {0: ph, 1: ph, 2: pw, 3: pw}, name=cl.fresh(f"{cl.name}_pad"),
                                 outputs=[padded]))
        inputs = [padded]
        ph = pw = 0
    params[3] = pw
    if ph != pw:
        params[13] = ph
    params[4] = 0
    if pp.round_mode == 1:
        params[5] = 1
    layers.append(ncnn_layer(cl, "Pooling", params, inputs=inputs))
    return layers


@converter("BatchNorm")
def _batch_norm(cl: CaffeLayer) -> list[Layer]:
    mean, var = cl.blob(0, "mean").ravel(), cl.blob(1, "variance").ravel()
    eps = np.float32(cl.param("batch_norm_param").eps)
    if len(cl.blobs) >= 3:
        factor = np.float32(cl.blobs[2].ravel()[0])
        scale = np.float32(0) if factor == 0 else np.float32(1) / factor
        mean = mean * scale
        var = var * scale
    n = mean.size
    return [ncnn_layer(cl, "BatchNorm", {0: n}, {"slope": np.ones(n, np.float32), "mean": mean,
                                                  "var": var + eps, "bias": np.zeros(n, np.float32)})]


@converter("Scale")
def _scale(cl: CaffeLayer) -> list[Layer]:
    sp = cl.param("scale_param")
    bias = int(sp.bias_term)
    if len(cl.bottoms) == 2:
        if bias:
            raise cl.unsupported("a bias with the scale taken from a second input")
        return [ncnn_layer(cl, "Scale", {0: -233, 1: 0})]
    scale = cl.blob(0, "scale").ravel()
    weights = {"scale": scale}
    if bias:
        weights["bias"] = cl.blob(1, "bias")
    return [ncnn_layer(cl, "Scale", {0: int(scale.size), 1: bias}, weights)]


@converter("Bias")
def _bias(cl: CaffeLayer) -> list[Layer]:
    if len(cl.bottoms) != 1:
        raise cl.unsupported("a bias taken from a second input")
    bias = cl.blob(0, "bias").ravel()
    return [ncnn_layer(cl, "Bias", {0: int(bias.size)}, {"bias": bias})]


@converter("Eltwise")
def _eltwise(cl: CaffeLayer) -> list[Layer]:
    ep = cl.param("eltwise_param")
    params: dict[int, ParamValue] = {0: int(ep.operation)}
    if ep.coeff:
        if len(ep.coeff) != len(cl.bottoms):
            raise ModelFormatError(f"{len(ep.coeff)} coefficients for {len(cl.bottoms)} inputs",
                                   where=f"layer {cl.name}")
        params[1] = [_f(c) for c in ep.coeff]
    return [ncnn_layer(cl, "Eltwise", params)]


@converter("ReLU")
def _relu(cl: CaffeLayer) -> list[Layer]:
    return [ncnn_layer(cl, "ReLU", {0: _f(cl.param("relu_param").negative_slope)})]


@converter("PReLU")
def _prelu(cl: CaffeLayer) -> list[Layer]:
    slope = cl.blob(0, "slope").ravel()
    return [ncnn_layer(cl, "PReLU", {0: int(slope.size)}, {"slope": slope})]


@converter("Sigmoid", "TanH", "Split")
def _plain(cl: CaffeLayer) -> list[Layer]:
    return [ncnn_layer(cl, cl.type)]


@converter("ELU")
def _elu(cl: CaffeLayer) -> list[Layer]:
    return [ncnn_layer(cl, "ELU", {0: _f(cl.param("elu_param").alpha)})]


@converter("Power")
def _power(cl: CaffeLayer) -> list[Layer]:
    pp = cl.param("power_param")
    return [ncnn_layer(cl, "Power", {0: _f(pp.power), 1: _f(pp.scale), 2: _f(pp.shift)})]


@converter("Concat")
def _concat(cl: CaffeLayer) -> list[Layer]:
    cp = cl.param("concat_param")
    axis = cp.concat_dim if cp.HasField("concat_dim") else cp.axis
    return [ncnn_layer(cl, "Concat", {0: _axis(cl, axis)})]


@converter("Slice")
def _slice(cl: CaffeLayer) -> list[Layer]:
    sp = cl.param("slice_param")
    axis = sp.slice_dim if sp.HasField("slice_dim") else sp.axis
    points = list(sp.slice_point)
    if not points:
        slices = [-233] * len(cl.tops)
    else:
        if len(points) + 1 != len(cl.tops):
            raise ModelFormatError(f"{len(points)} slice points for {len(cl.tops)} outputs", where=f"layer {cl.name}")
        slices = [b - a for a, b in zip([0, *points[:-1]], points)] + [-233]
    return [ncnn_layer(cl, "Slice", {0: slices, 1: _axis(cl, axis)})]


@converter("Softmax")
def _softmax(cl: CaffeLayer) -> list[Layer]:
    axis = _axis(cl, cl.param("softmax_param").axis)
    # ncnn refuses a non-zero axis unless 1=1 (its fixed axis handling) is set; for axis 0 both agree.
    return [ncnn_layer(cl, "Softmax", {0: axis} if axis == 0 else {0: axis, 1: 1})]


@converter("Dropout")
def _dropout(cl: CaffeLayer) -> list[Layer]:
    dp = cl.param("dropout_param")
    if dp.HasField("scale_train") and not dp.scale_train:
        return [ncnn_layer(cl, "Dropout", {0: _f(1 - np.float32(dp.dropout_ratio))})]
    return [ncnn_layer(cl, "Dropout")]


@converter("Flatten")
def _flatten(cl: CaffeLayer) -> list[Layer]:
    fp = cl.param("flatten_param")
    if fp.axis != 1 or fp.end_axis != -1:
        raise cl.unsupported(f"axis {fp.axis} end_axis {fp.end_axis} (only 1 and -1)")
    return [ncnn_layer(cl, "Flatten")]


@converter("Reshape")
def _reshape(cl: CaffeLayer) -> list[Layer]:
    rp = cl.param("reshape_param")
    if rp.axis != 0 or rp.num_axes != -1:
        raise cl.unsupported(f"axis {rp.axis} num_axes {rp.num_axes} (only the whole shape)")
    dims = list(rp.shape.dim)
    if not 1 <= len(dims) <= 4:
        raise cl.unsupported(f"a {len(dims)}-d shape")
    # caffe2ncnn's mapping: the leading (batch) dim is dropped when there are 2 or more.
    spatial = dims[1:] if len(dims) > 1 else dims
    w = spatial[-1]
    h = spatial[-2] if len(spatial) >= 2 else -233
    c = spatial[-3] if len(spatial) >= 3 else -233
    return [ncnn_layer(cl, "Reshape", {0: w, 1: h, 2: c, 3: 0})]


PERMUTE_ORDER_TYPES = {(0, 1, 2, 3): 0, (0, 1, 3, 2): 1, (0, 2, 1, 3): 2, (0, 2, 3, 1): 3, (0, 3, 1, 2): 4,
                       (0, 3, 2, 1): 5}
"""Caffe NCHW axis orders -> ncnn Permute ``order_type`` (caffe2ncnn's table)."""


@converter("Permute")
def _permute(cl: CaffeLayer) -> list[Layer]:
    order = list(cl.param("permute_param").order)
    full = order + [a for a in range(4) if a not in order]
    if tuple(full) not in PERMUTE_ORDER_TYPES:
        raise cl.unsupported(f"order {order}")
    return [ncnn_layer(cl, "Permute", {0: PERMUTE_ORDER_TYPES[tuple(full)]})]


@converter("Crop")
def _crop(cl: CaffeLayer) -> list[Layer]:
    cp = cl.param("crop_param")
    if len(cl.bottoms) != 2:
        raise ModelFormatError("Crop needs two inputs (the blob and the reference)", where=f"layer {cl.name}")
    offsets = list(cp.offset)
    axis = cp.axis if cp.axis >= 0 else cp.axis + 4
    if axis not in (1, 2):
        raise cl.unsupported(f"axis {cp.axis} (only 1 and 2)")
    if len(offsets) == 1:
        offsets = offsets * (4 - axis)
    elif offsets and len(offsets) != 4 - axis:
        raise ModelFormatError(f"{len(offsets)} offsets for axis {cp.axis}", where=f"layer {cl.name}")
    params: dict[int, ParamValue] = {}
    for pid, off in zip((0, 1, 2), reversed(offsets)):  # w, h, c
        params[pid] = off
    if axis == 1:
        return [ncnn_layer(cl, "Crop", params)]
    # ncnn takes the reference's channels when it has them, Caffe keeps them for axis 2: hand ncnn
    # a 2-d (h, w) reference, the first channel of the real one.
    ref = cl.bottoms[1]
    cut, flat = cl.fresh(f"{ref}_{cl.name}_cut"), cl.fresh(f"{ref}_{cl.name}_ref")
    return [ncnn_layer(cl, "Crop", {3: -233, 4: -233, 5: 1}, name=cl.fresh(f"{cl.name}_refcut"), inputs=[ref],
                       outputs=[cut]),
            ncnn_layer(cl, "Reshape", {0: 0, 1: 0}, name=cl.fresh(f"{cl.name}_ref"), inputs=[cut], outputs=[flat]),
            ncnn_layer(cl, "Crop", params, inputs=[cl.bottoms[0], flat])]


@converter("LRN")
def _lrn(cl: CaffeLayer) -> list[Layer]:
    lp = cl.param("lrn_param")
    params: dict[int, ParamValue] = {0: int(lp.norm_region), 1: lp.local_size, 2: _f(lp.alpha), 3: _f(lp.beta)}
    if lp.norm_region == 0 and _f(lp.k) != 1.0:
        params[4] = _f(lp.k)
    return [ncnn_layer(cl, "LRN", params)]


@converter("Normalize")
def _normalize(cl: CaffeLayer) -> list[Layer]:
    np_ = cl.param("norm_param")
    scale = cl.blob(0, "scale").ravel()
    params = {0: int(np_.across_spatial), 1: int(np_.channel_shared), 2: _f(np_.eps), 3: int(scale.size)}
    return [ncnn_layer(cl, "Normalize", params, {"scale": scale})]


@converter("ShuffleChannel")
def _shuffle_channel(cl: CaffeLayer) -> list[Layer]:
    return [ncnn_layer(cl, "ShuffleChannel", {0: cl.param("shuffle_channel_param").group})]


# -- inputs -----------------------------------------------------------------------------------
def input_params(dims: Sequence[int]) -> dict[int, ParamValue]:
    """Input ``w/h/d/c`` ids from a Caffe shape that includes the batch axis."""
    dims = [int(d) for d in dims]
    if len(dims) == 5:
        return {0: dims[4], 1: dims[3], 11: dims[2], 2: dims[1]}
    if len(dims) == 4:
        return {0: dims[3], 1: dims[2], 2: dims[1]}
    if len(dims) == 3:
        return {0: dims[2], 1: dims[1]}
    if len(dims) == 2:
        return {0: dims[1]}
    return {}


def shape_option_params(shape: Sequence[int]) -> dict[int, ParamValue]:
    """Input ids from a user ``shape=[w,h,c]`` (ncnn's order, as ncnn2table takes it)."""
    return dict(zip((0, 1, 2), (int(v) for v in shape)))


def _inputs(cl: CaffeLayer, shapes: Sequence[dict[int, ParamValue]], tops: Sequence[str] | None = None) -> list[Layer]:
    """One ncnn Input layer per top."""
    tops = list(cl.tops if tops is None else tops)
    layers = []
    for i, top in enumerate(tops):
        params = shapes[i] if i < len(shapes) else (shapes[0] if shapes else {})
        name = cl.name if len(tops) == 1 else cl.fresh(top)
        layers.append(ncnn_layer(cl, "Input", params, name=name, inputs=[], outputs=[top]))
    return layers


@converter("Input")
def _input(cl: CaffeLayer) -> list[Layer]:
    return _inputs(cl, [input_params(s.dim) for s in cl.param("input_param").shape])


@converter("MemoryData")
def _memory_data(cl: CaffeLayer) -> list[Layer]:
    mp = cl.param("memory_data_param")
    return _inputs(cl, [{0: mp.width, 1: mp.height, 2: mp.channels}], cl.tops[:1])


@converter("DummyData")
def _dummy_data(cl: CaffeLayer) -> list[Layer]:
    dp = cl.param("dummy_data_param")
    if dp.shape:
        shapes = [input_params(s.dim) for s in dp.shape]
    else:
        shapes = [input_params([n, c, h, w]) for n, c, h, w in zip(dp.num, dp.channels, dp.height, dp.width)]
    return _inputs(cl, shapes)


@converter("Data", "ImageData", "WindowData", "HDF5Data", "AnnotatedData")
def _data(cl: CaffeLayer) -> list[Layer]:
    """Database readers become an Input for their data top (the label top is dropped)."""
    crop = cl.param("transform_param").crop_size if cl.has_param("transform_param") else 0
    return _inputs(cl, [{0: crop, 1: crop}] if crop else [], cl.tops[:1])
