"""ncnn layer types for 1-D and 3-D windows, and the tensor and activation types ONNX models need.

Convolution1D/3D, ConvolutionDepthWise1D/3D, Deconvolution1D/3D, DeconvolutionDepthWise1D/3D,
Pooling1D/3D, Tile, MatMul, PixelShuffle, GLU, Shrink, Softplus, CELU and Erf, with the parameter
ids and defaults of each type's ``load_param`` in Tencent/ncnn ``src/layer/*.cpp`` (where the
operator table of ``docs/developer-guide/operators.md`` disagrees, ``load_param`` wins: Pooling3D's
pads are ``3 14 13 15 23 16``).  Declared in the compact form of :mod:`ncnnc.core.layer_types`.

Weights are stored output-major like ONNX's: ``(num_output, cin / group, kw)`` for 1-D and
``(num_output, cin / group, kd, kh, kw)`` for 3-D kernels.
"""

from __future__ import annotations

from ncnnc.core.layer_types import ACT, layer_type
from ncnnc.core.params import ParamDict, WeightSpec

GEOM_1D = "1:kernel_w=0 2:dilation_w=1 3:stride_w=1 4:pad_left=0 15:pad_right=@4"
GEOM_3D = ("1:kernel_w=0 11:kernel_h=@1 21:kernel_d=@1 2:dilation_w=1 12:dilation_h=@2 22:dilation_d=@2 "
           "3:stride_w=1 13:stride_h=@3 23:stride_d=@3 4:pad_left=0 15:pad_right=@4 14:pad_top=@4 "
           "16:pad_bottom=@14 24:pad_front=@4 17:pad_behind=@24")
KERNEL_NAMES = {1: ("kernel_w",), 3: ("kernel_d", "kernel_h", "kernel_w")}
"""The kernel size params of an N-D window type, outermost axis first."""


def window_rank(layer_type_name: str) -> int:
    """1 or 3: the number of spatial axes of an N-D convolution/pooling type (by its name's suffix)."""
    return 1 if layer_type_name.endswith("1D") else 3


def _weights(rank: int):
    def specs(p: ParamDict) -> list[WeightSpec]:
        if p["dynamic_weight"]:
            return []
        n, size = p["num_output"], p["weight_data_size"]
        kernel = [p[k] for k in KERNEL_NAMES[rank]]
        taps = 1
        for k in kernel:
            taps *= k
        cin = size // max(n * taps, 1)
        result = [WeightSpec("weight", size, 0, (n, cin, *kernel))]
        if p["bias_term"]:
            result.append(WeightSpec("bias", n, 1, ()))
        return result
    return specs


CONV_TAIL = " 5:bias_term=0 6:weight_data_size=0 " + ACT
layer_type("Convolution1D", "0:num_output=0 " + GEOM_1D + " 18:pad_value=0." + CONV_TAIL + " 19:dynamic_weight=0",
           _weights(1))
layer_type("ConvolutionDepthWise1D", "0:num_output=0 " + GEOM_1D + " 18:pad_value=0." + CONV_TAIL
           + " 7:group=1 19:dynamic_weight=0", _weights(1))
layer_type("Convolution3D", "0:num_output=0 " + GEOM_3D + " 18:pad_value=0." + CONV_TAIL + " 19:dynamic_weight=0",
           _weights(3))
layer_type("ConvolutionDepthWise3D", "0:num_output=0 " + GEOM_3D + " 18:pad_value=0." + CONV_TAIL
           + " 7:group=1 19:dynamic_weight=0", _weights(3))
DECONV_1D = "0:num_output=0 " + GEOM_1D + CONV_TAIL + " 18:output_pad_right=0 20:output_w=0 28:dynamic_weight=0"
DECONV_3D = ("0:num_output=0 " + GEOM_3D + CONV_TAIL + " 18:output_pad_right=0 19:output_pad_bottom=@18 "
             "20:output_pad_behind=@18 25:output_w=0 26:output_h=@25 27:output_d=@25 28:dynamic_weight=0")
layer_type("Deconvolution1D", DECONV_1D, _weights(1))
layer_type("DeconvolutionDepthWise1D", DECONV_1D + " 7:group=1", _weights(1))
layer_type("Deconvolution3D", DECONV_3D, _weights(3))
layer_type("DeconvolutionDepthWise3D", DECONV_3D + " 7:group=1", _weights(3))
POOL_TAIL = " 4:global_pooling=0 5:pad_mode=0 6:avgpool_count_include_pad=0 7:adaptive_pooling=0 8:out_w=0"
layer_type("Pooling1D", "0:pooling_type=0 1:kernel_w=0 2:stride_w=1 3:pad_left=0 14:pad_right=@3" + POOL_TAIL)
layer_type("Pooling3D", "0:pooling_type=0 1:kernel_w=0 11:kernel_h=@1 21:kernel_d=@1 2:stride_w=1 12:stride_h=@2 "
           "22:stride_d=@2 3:pad_left=0 14:pad_right=@3 13:pad_top=@3 15:pad_bottom=@13 23:pad_front=@3 "
           "16:pad_behind=@23" + POOL_TAIL + " 18:out_h=@8 28:out_d=@8")
layer_type("Tile", "0:axis=0 1:tiles=1 2:repeats=[]",
           doc="2=repeats (one per blob axis, numpy order, padded with leading 1s) wins over 0=axis 1=tiles.")
layer_type("MatMul", "0:transB=0", doc="numpy matmul of two inputs (batch axes broadcast), B transposed with 0=1.")
layer_type("PixelShuffle", "0:upscale_factor=1 1:mode=0",
           doc="depth to space; mode 0: channel = outc * r * r + i * r + j (PyTorch / ONNX CRD), 1: DCR.")
layer_type("GLU", "0:axis=0", doc="first half of the axis times sigmoid of the second half.")
layer_type("Shrink", "0:bias=0. 1:lambd=0.5")
layer_type("Softplus")
layer_type("CELU", "0:alpha=1.")
layer_type("Erf")
