"""The built-in ncnn layer types: parameter ids with ncnn's defaults, and the weights each loads.

Facts from Tencent/ncnn ``docs/developer-guide/operation-param-weight-table.md`` and each layer's
``load_param``/``load_model``.  Parameters are declared in a compact form, one ``id:name=default``
per word: a default of ``@N`` means "the value of param N", ``[]`` marks an array parameter, a
default with a dot is a float; ``{lo..hi}`` after the default gives the values an enumeration
(an op, a mode) may take, as the ncnn runtime's ``load_param`` checks them.  Weights are declared
by a function of the layer's params returning :class:`~ncnnc.core.params.WeightSpec` objects in
the order ``load_model`` reads them.
"""

from __future__ import annotations

import math

from ncnnc.core.errors import UnsupportedError
from ncnnc.core.params import LayerSchema, ParamDict, ParamSpec, Ref, WeightSpec, register_schema

FLT_MAX = 3.4028234663852886e38


def _parse_params(decl: str) -> list[ParamSpec]:
    specs = []
    for word in decl.split():
        word, _, limits = word.partition("{")
        choices = tuple(int(v) for v in limits.rstrip("}").split("..")) if limits else None
        head, _, default = word.partition("=")
        pid, name = head.split(":")
        array = default in ("[]", "[f]")
        value: object
        if array:
            value = [] if default == "[]" else [0.0]
        elif default.startswith("@"):
            value = Ref(int(default[1:]))
        elif default in ("FLT_MAX", "-FLT_MAX"):
            value = FLT_MAX if default == "FLT_MAX" else -FLT_MAX
        elif "." in default or "e" in default:
            value = float(default)
        else:
            value = int(default or 0)
        specs.append(ParamSpec(int(pid), name, value, array, choices))  # type: ignore[arg-type]
    return specs


def layer_type(name: str, params: str = "", weights=None, doc: str = "", check=None) -> LayerSchema:
    """Declare and register a layer type from the compact parameter form.

    ``check(params)`` returns what the type's ncnn ``load_param`` would reject (a message) or None;
    the generic rules of :mod:`ncnnc.core.validate` apply to every type without it.
    """
    return register_schema(LayerSchema(name, _parse_params(params), weights, doc, check))


def _w(name: str, count: int, load_type: int, *shape: int) -> WeightSpec:
    return WeightSpec(name, int(count), load_type, tuple(int(s) for s in shape) if shape else ())


# --- activation, shared by Convolution-like layers (9=activation_type 10=activation_params)
ACT = "9:activation_type=0{0..6} 10:activation_params=[f]"
CONV_GEOM = ("1:kernel_w=0 11:kernel_h=@1 2:dilation_w=1 12:dilation_h=@2 3:stride_w=1 13:stride_h=@3 "
             "4:pad_left=0 15:pad_right=@4 14:pad_top=@4 16:pad_bottom=@14 18:pad_value=0.")


def _conv_weights(p: ParamDict, grouped: bool = False) -> list[WeightSpec]:
    if p["dynamic_weight"]:
        return []
    n, ws = p["num_output"], p["weight_data_size"]
    kw, kh = p["kernel_w"], p["kernel_h"]
    cin_per_group = ws // max(n * kw * kh, 1)
    specs = [_w("weight", ws, 0, n, cin_per_group, kh, kw)]
    if p["bias_term"]:
        specs.append(_w("bias", n, 1))
    term = p["int8_scale_term"]
    if term:
        group = p["group"] if grouped else 1
        nscales = n if not grouped else (group if term in (1, 101) else 1)
        specs.append(_w("weight_int8_scales", nscales, 1))
        specs.append(_w("bottom_int8_scales", 1, 1))
        if term > 100:
            specs.append(_w("top_int8_scales", 1, 1))
    return specs


def _deconv_weights(p: ParamDict) -> list[WeightSpec]:
    if p["dynamic_weight"]:
        return []
    n, ws = p["num_output"], p["weight_data_size"]
    kw, kh = p["kernel_w"], p["kernel_h"]
    cin_per_group = ws // max(n * kw * kh, 1)
    # ncnn stores deconvolution weights output-major, like convolution: (num_output, cin/group, kh, kw)
    specs = [_w("weight", ws, 0, n, cin_per_group, kh, kw)]
    if p["bias_term"]:
        specs.append(_w("bias", n, 1))
    return specs


def _innerproduct_weights(p: ParamDict) -> list[WeightSpec]:
    n, ws = p["num_output"], p["weight_data_size"]
    specs = [_w("weight", ws, 0, n, ws // max(n, 1))]
    if p["bias_term"]:
        specs.append(_w("bias", n, 1))
    if p["int8_scale_term"]:
        specs.append(_w("weight_int8_scales", n, 1))
        specs.append(_w("bottom_int8_scales", 1, 1))
    return specs




def _dims_not_negative(p: ParamDict) -> str | None:
    """Input/MemoryData sizes are counts: none may be negative (-233 is ncnn's "no such axis", as the
    R-CNN examples' ``im_info`` Input ``0=3 1=-233 2=-233`` writes it)."""
    bad = [f"{k}={p[k]}" for k in ("w", "h", "d", "c") if p[k] < 0 and p[k] != -233]
    return f"negative size {', '.join(bad)}" if bad else None


layer_type("Input", "0:w=0 1:h=0 11:d=0 2:c=0", check=_dims_not_negative)
layer_type("Convolution", "0:num_output=0 " + CONV_GEOM + " 5:bias_term=0 6:weight_data_size=0 "
           "8:int8_scale_term=0 " + ACT + " 17:impl_type=0 19:dynamic_weight=0",
           _conv_weights)
def _group_divides(p: ParamDict) -> str | None:
    """ncnn's ConvolutionDepthWise rejects a group that does not divide num_output."""
    n, g = p["num_output"], p["group"]
    return f"group {g} does not divide num_output {n}" if g > 0 and n % g else None


layer_type("ConvolutionDepthWise", "0:num_output=0 " + CONV_GEOM + " 5:bias_term=0 6:weight_data_size=0 "
           "7:group=1 8:int8_scale_term=0 " + ACT + " 19:dynamic_weight=0",
           lambda p: _conv_weights(p, grouped=True), check=_group_divides)
DECONV = ("0:num_output=0 " + CONV_GEOM.replace(" 18:pad_value=0.", "") + " 5:bias_term=0 "
          "6:weight_data_size=0 7:group=1 " + ACT + " 18:output_pad_right=0 19:output_pad_bottom=@18 "
          "20:output_w=0 21:output_h=@20 28:dynamic_weight=0")
layer_type("Deconvolution", DECONV, _deconv_weights)
layer_type("DeconvolutionDepthWise", DECONV, _deconv_weights)
layer_type("InnerProduct", "0:num_output=0 1:bias_term=0 2:weight_data_size=0 8:int8_scale_term=0 " + ACT,
           _innerproduct_weights)
layer_type("Pooling", "0:pooling_type=0{0..1} 1:kernel_w=0 11:kernel_h=@1 2:stride_w=1 12:stride_h=@2 "
           "3:pad_left=0 14:pad_right=@3 13:pad_top=@3 15:pad_bottom=@13 4:global_pooling=0 "
           "5:pad_mode=0{0..3} 6:avgpool_count_include_pad=0 7:adaptive_pooling=0 8:out_w=0 18:out_h=@8",
           check=lambda p: "adaptive pooling needs out_w and out_h of at least 1"
           if p["adaptive_pooling"] and not p["global_pooling"] and min(p["out_w"], p["out_h"]) < 1 else None)
layer_type("ReLU", "0:slope=0.")
layer_type("PReLU", "0:num_slope=0", lambda p: [_w("slope", p["num_slope"], 1)])
layer_type("Clip", "0:min=-FLT_MAX 1:max=FLT_MAX")
layer_type("Sigmoid")
layer_type("TanH")
layer_type("HardSigmoid", "0:alpha=0.2 1:beta=0.5")
layer_type("HardSwish", "0:alpha=0.2 1:beta=0.5")
layer_type("Swish")
layer_type("Mish")
layer_type("ELU", "0:alpha=0.1")
layer_type("SELU", "0:alpha=1.67326324 1:lambda=1.050700987")
layer_type("AbsVal")
layer_type("BNLL")
layer_type("Exp", "0:base=-1. 1:scale=1. 2:shift=0.")
layer_type("Log", "0:base=-1. 1:scale=1. 2:shift=0.")
layer_type("Power", "0:power=1. 1:scale=1. 2:shift=0.")
layer_type("Threshold", "0:threshold=0.")
layer_type("BatchNorm", "0:channels=0 1:eps=0.",
           lambda p: [_w(n, p["channels"], 1) for n in ("slope", "mean", "var", "bias")])


def _scale_weights(p: ParamDict) -> list[WeightSpec]:
    n = p["scale_data_size"]
    if n == -233:
        return []
    specs = [_w("scale", n, 1)]
    if p["bias_term"]:
        specs.append(_w("bias", n, 1))
    return specs


layer_type("Scale", "0:scale_data_size=0 1:bias_term=0", _scale_weights)
layer_type("Bias", "0:bias_data_size=0", lambda p: [_w("bias", p["bias_data_size"], 1)])
layer_type("Eltwise", "0:op_type=0{0..2} 1:coeffs=[f]")
layer_type("BinaryOp", "0:op_type=0{0..18} 1:with_scalar=0 2:b=0.")
layer_type("UnaryOp", "0:op_type=0{0..27}")
layer_type("Concat", "0:axis=0")
layer_type("Split")
layer_type("Slice", "0:slices=[] 1:axis=0{-3..3} 2:indices=[]")
layer_type("Crop", "0:woffset=0 1:hoffset=0 13:doffset=0 2:coffset=0 3:outw=0 4:outh=0 14:outd=0 5:outc=0 "
           "6:woffset2=0 7:hoffset2=0 15:doffset2=0 8:coffset2=0 9:starts=[] 10:ends=[] 11:axes=[]")


def _fixbug0(what: str):
    """ncnn refuses the old form of Softmax/Reduction: ``fixbug0=0`` with an axis given."""
    def check(p: ParamDict) -> str | None:
        return f"{what} needs 1=fixbug0 (ncnn: param is too old)" if not p["fixbug0"] and p[what] else None
    return check


layer_type("Softmax", "0:axis=0 1:fixbug0=0", check=_fixbug0("axis"))
layer_type("Reshape", "0:w=-233 1:h=-233 11:d=-233 2:c=-233 3:permute=0")
layer_type("Flatten")
layer_type("Permute", "0:order_type=0{0..23}")
layer_type("Padding", "0:top=0 1:bottom=0 2:left=0 3:right=0 4:type=0{0..2} 5:value=0. "
           "6:per_channel_pad_data_size=0 7:front=0 8:behind=0",
           lambda p: [_w("per_channel_pad", p["per_channel_pad_data_size"], 1)]
           if p["per_channel_pad_data_size"] else [])
layer_type("Interp", "0:resize_type=0{0..3} 1:height_scale=1. 2:width_scale=1. 3:output_height=0 "
           "4:output_width=0 5:dynamic_target_size=0 6:align_corner=0")
layer_type("ShuffleChannel", "0:group=1 1:reverse=0")
layer_type("Dropout", "0:scale=1.")
layer_type("Noop")


def _memorydata_weights(p: ParamDict) -> list[WeightSpec]:
    dims = [p["c"], p["d"], p["h"], p["w"]]
    shape = [d for d in dims if d] or [1]
    count = 1
    for d in shape:
        count *= d
    return [_w("data", count, p["load_type"], *shape)]


layer_type("MemoryData", "0:w=0 1:h=0 11:d=0 2:c=0 21:load_type=1", _memorydata_weights,
           check=_dims_not_negative)
layer_type("GroupNorm", "0:group=1 1:channels=0 2:eps=0.001 3:affine=1",
           lambda p: [_w("gamma", p["channels"], 1), _w("beta", p["channels"], 1)] if p["affine"] else [])
layer_type("InstanceNorm", "0:channels=0 1:eps=0.001 2:affine=1",
           lambda p: [_w("gamma", p["channels"], 1), _w("beta", p["channels"], 1)] if p["affine"] else [])
layer_type("LayerNorm", "0:affine_size=0 1:eps=0.001 2:affine=1",
           lambda p: [_w("gamma", p["affine_size"], 1), _w("beta", p["affine_size"], 1)]
           if p["affine"] else [])
layer_type("Normalize", "0:across_spatial=0 4:across_channel=1 1:channel_shared=0 2:eps=0.0001 "
           "9:eps_mode=0 3:scale_data_size=0", lambda p: [_w("scale", p["scale_data_size"], 1)])
layer_type("LRN", "0:region_type=0{0..1} 1:local_size=5 2:alpha=1. 3:beta=0.75 4:bias=1.")
layer_type("Quantize", "0:scale_data_size=1", lambda p: [_w("scale", p["scale_data_size"], 1)])
layer_type("Dequantize", "0:scale_data_size=1 1:bias_data_size=0",
           lambda p: [_w("scale", p["scale_data_size"], 1)]
           + ([_w("bias", p["bias_data_size"], 1)] if p["bias_data_size"] else []))
layer_type("Requantize", "0:scale_in_data_size=1 1:scale_out_data_size=1 2:bias_data_size=0 " + ACT.replace(
    "9:", "3:").replace("10:", "4:"),
           lambda p: [_w("scale_in", p["scale_in_data_size"], 1), _w("scale_out", p["scale_out_data_size"], 1)]
           + ([_w("bias", p["bias_data_size"], 1)] if p["bias_data_size"] else []))
layer_type("Reduction", "0:operation=0{0..10} 1:reduce_all=1 2:coeff=1. 3:axes=[] 4:keepdims=0 5:fixbug0=0",
           check=_fixbug0("axes"))
layer_type("ArgMax", "0:out_max_val=0 1:topk=1")
layer_type("Embed", "0:num_output=0 1:input_dim=0 2:bias_term=0 3:weight_data_size=0 18:int8_scale_term=0",
           lambda p: [_w("weight", p["weight_data_size"], 0, p["input_dim"], p["num_output"])]
           + ([_w("bias", p["num_output"], 1)] if p["bias_term"] else [])
           + ([_w("weight_int8_scales", 1, 1)] if p["int8_scale_term"] else []))


def _rnn_weights(gates: int, bias_rows: int):
    def weights(p: ParamDict) -> list[WeightSpec]:
        nd = 2 if p["direction"] == 2 else 1
        hidden = p["hidden_size"] if "hidden_size" in p.schema.by_name else p["num_output"]
        num_output = p["num_output"]
        size = p["weight_data_size"] // nd // hidden // gates
        specs = [_w("weight_xc", nd * hidden * gates * size, 0, nd, hidden * gates, size),
                 _w("bias_c", nd * bias_rows * hidden, 0, nd, bias_rows, hidden),
                 _w("weight_hc", nd * hidden * gates * num_output, 0, nd, hidden * gates, num_output)]
        if gates == 4 and num_output != hidden:
            specs.append(_w("weight_hr", nd * num_output * hidden, 0, nd, num_output, hidden))
        if p["int8_scale_term"]:
            specs.append(_w("weight_xc_int8_scales", nd * hidden * gates, 1, nd, hidden * gates))
            specs.append(_w("weight_hc_int8_scales", nd * hidden * gates, 1, nd, hidden * gates))
        return specs

    return weights


layer_type("RNN", "0:num_output=0 1:weight_data_size=0 2:direction=0 8:int8_scale_term=0", _rnn_weights(1, 1))
layer_type("LSTM", "0:num_output=0 1:weight_data_size=0 2:direction=0 3:hidden_size=@0 8:int8_scale_term=0",
           _rnn_weights(4, 4))
layer_type("GRU", "0:num_output=0 1:weight_data_size=0 2:direction=0 8:int8_scale_term=0", _rnn_weights(3, 4))


def _check_quantize_term(p: ParamDict) -> int:
    """The ``18=`` term of a Gemm/MultiHeadAttention; ncnn's newest sources read 4xx/6xx/8xx as
    block-wise 4/6/8-bit weights, which the ncnn runtime ncnnc is checked against does not load
    that way, so ncnnc refuses them rather than mis-size the weights."""
    term = p["int8_scale_term"]
    if term >= 400 or term in (4, 5, 6):
        raise UnsupportedError(f"{p.layer_type} 18={term} is not supported (ncnnc reads fp32 (0) and int8 (2) "
                               "weights, not block-wise 4/6/8-bit ones)")
    return term


def _gemm_weights(p: ParamDict) -> list[WeightSpec]:
    m, n, k = p["constantM"], p["constantN"], p["constantK"]
    term = _check_quantize_term(p)
    specs = []
    if p["constantA"]:
        specs.append(_w("A_data", m * k, 0, *((k, m) if p["transA"] else (m, k))))
    if p["constantB"]:
        specs.append(_w("B_data", k * n, 0, *((n, k) if p["transB"] else (k, n))))
    bt = p["constant_broadcast_type_C"]
    if p["constantC"] and bt != -1:
        shape = {0: (1,), 1: (m,), 2: (m, 1), 3: (m, n), 4: (1, n)}[bt]
        specs.append(_w("C_data", math.prod(shape), 0, *shape))
    if term and p["constantA"]:
        specs.append(_w("A_data_int8_scales", m, 1))
    if term and p["constantB"]:
        specs.append(_w("B_data_int8_scale", 1, 1))
    return specs


layer_type("Gemm", "0:alpha=1. 1:beta=1. 2:transA=0 3:transB=0 4:constantA=0 5:constantB=0 6:constantC=0 "
           "7:constantM=0 8:constantN=0 9:constantK=0 10:constant_broadcast_type_C=0 11:output_N1M=0 "
           "12:output_elempack=0 13:output_elemtype=0 14:output_transpose=0 18:int8_scale_term=0 "
           "20:constant_TILE_M=0 21:constant_TILE_N=0 22:constant_TILE_K=0", _gemm_weights,
           doc="18=int8_scale_term is ncnn's quantize_term: 2 = int8 constant A/B (as ncnn2int8 writes).")


def _mha_weights(p: ParamDict) -> list[WeightSpec]:
    e, kdim, vdim = p["embed_dim"], p["kdim"], p["vdim"]
    qdim = p["weight_data_size"] // max(e, 1)
    specs = []
    for name, rows, cols in (("q", e, qdim), ("k", e, kdim), ("v", e, vdim), ("out", qdim, e)):
        specs += [_w(f"{name}_weight", rows * cols, 0, rows, cols), _w(f"{name}_bias", rows, 1)]
    if _check_quantize_term(p):
        specs += [_w(f"{name}_weight_int8_scales", e, 1) for name in ("q", "k", "v")]
        specs.append(_w("out_weight_int8_scale", 1, 1))
    return specs


layer_type("MultiHeadAttention", "0:embed_dim=0 1:num_heads=1 2:weight_data_size=0 3:kdim=@0 4:vdim=@0 "
           "5:attn_mask=0 6:scale=0. 7:kv_cache=0 18:int8_scale_term=0", _mha_weights,
           doc="6=scale defaults to 1/sqrt(embed_dim / num_heads) (integer division) when not set; "
               "18=int8_scale_term is ncnn's quantize_term (2 = int8 weights, as ncnn2int8 writes).")
layer_type("SDPA", "5:attn_mask=0 6:scale=0. 7:kv_cache=0 18:int8_scale_term=0",
           doc="No weights; 6=scale 0 means 1/sqrt(embed_dim); 18=2 runs it with dynamic int8 activations.")

# the 1-D/3-D window, tensor and activation types; the detection, ROI and shape-utility types
from ncnnc.core import layer_types_extra, layer_types_nd  # noqa: E402,F401
