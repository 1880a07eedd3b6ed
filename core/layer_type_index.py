"""ncnn's built-in layer type indices (``layer_type_enum.h``), used by the binary ``.param.bin`` form."""

from __future__ import annotations

LAYER_TYPE_ORDER = (
    "AbsVal", "ArgMax", "BatchNorm", "Bias", "BNLL", "Concat", "Convolution", "Crop", "Deconvolution",
    "Dropout", "Eltwise", "ELU", "Embed", "Exp", "Flatten", "InnerProduct", "Input", "Log", "LRN",
    "MemoryData", "MVN", "Pooling", "Power", "PReLU", "Proposal", "Reduction", "ReLU", "Reshape",
    "ROIPooling", "Scale", "Sigmoid", "Slice", "Softmax", "Split", "SPP", "TanH", "Threshold", "Tile", "RNN",
    "LSTM", "BinaryOp", "UnaryOp", "ConvolutionDepthWise", "Padding", "Squeeze", "ExpandDims", "Normalize",
    "Permute", "PriorBox", "DetectionOutput", "Interp", "DeconvolutionDepthWise", "ShuffleChannel",
    "InstanceNorm", "Clip", "Reorg", "YoloDetectionOutput", "Quantize", "Dequantize", "Yolov3DetectionOutput",
    "PSROIPooling", "ROIAlign", "Packing", "Requantize", "Cast", "HardSigmoid", "SELU", "HardSwish", "Noop",
    "PixelShuffle", "DeepCopy", "Mish", "StatisticsPooling", "Swish", "Gemm", "GroupNorm", "LayerNorm",
    "Softplus", "GRU", "MultiHeadAttention", "GELU", "Convolution1D", "Pooling1D", "ConvolutionDepthWise1D",
    "Convolution3D", "ConvolutionDepthWise3D", "Pooling3D", "MatMul", "Deconvolution1D",
    "DeconvolutionDepthWise1D", "Deconvolution3D", "DeconvolutionDepthWise3D", "Einsum", "DeformableConv2D",
    "GLU", "Fold", "Unfold", "GridSample", "CumulativeSum", "CopyTo", "Erf", "Diag", "CELU", "Shrink",
    "RMSNorm", "Spectrogram", "InverseSpectrogram", "Flip", "SDPA",
)
"""Layer type names in ncnn's enum order: the index is the type id in ``.param.bin``."""

TYPE_INDEX = {name: i for i, name in enumerate(LAYER_TYPE_ORDER)}

_ALWAYS_ONE_BLOB = (
    "AbsVal", "ArgMax", "BatchNorm", "Bias", "BNLL", "Cast", "CELU", "Clip", "Convolution3D",
    "ConvolutionDepthWise3D", "CumulativeSum", "Deconvolution3D", "DeconvolutionDepthWise3D", "DeepCopy",
    "Dequantize", "Diag", "Dropout", "ELU", "Embed", "Erf", "Exp", "ExpandDims", "Flatten", "Flip", "Fold", "GELU",
    "GLU", "GroupNorm", "HardSigmoid", "HardSwish", "InnerProduct", "InstanceNorm", "InverseSpectrogram",
    "LayerNorm", "Log", "LRN", "Mish", "MVN", "Normalize", "Packing", "Padding", "Permute", "PixelShuffle",
    "Pooling", "Pooling1D", "Pooling3D", "Power", "PReLU", "Quantize", "Reduction", "ReLU", "Reorg", "Requantize",
    "RMSNorm", "SELU", "Shrink", "ShuffleChannel", "Sigmoid", "Softmax", "Softplus", "Spectrogram", "SPP",
    "Squeeze", "StatisticsPooling", "Swish", "TanH", "Threshold", "Tile", "UnaryOp", "Unfold"
)
_CROP_SIZES = (3, 4, 14, 5, 6, 7, 15, 8)
"""Crop's outw, outh, outd, outc, woffset2, hoffset2, doffset2, coffset2: all zero = crop to a reference blob."""

ONE_BLOB_ONLY = {
    **dict.fromkeys(_ALWAYS_ONE_BLOB, lambda p: True),
    **dict.fromkeys(("Convolution", "ConvolutionDepthWise", "Convolution1D", "ConvolutionDepthWise1D"),
                    lambda p: not p[19]),
    **dict.fromkeys(("Deconvolution", "DeconvolutionDepthWise", "Deconvolution1D", "DeconvolutionDepthWise1D"),
                    lambda p: not p[28]),
    "BinaryOp": lambda p: bool(p[1]),
    "Scale": lambda p: p[0] != -233,
    "Interp": lambda p: not p[5] and 9 not in p,
    "Reshape": lambda p: 6 not in p,
    "Crop": lambda p: not ({19, 20, 21} & set(p)) and (any(p[i] for i in _CROP_SIZES) or bool(p[9] and p[10])),
}
"""ncnn types whose layer takes exactly one input and gives one output (``one_blob_only``), as a rule of the
layer's params (dynamic weights, a reference blob or a shape expression make it take more).  ncnn's
``Net::load_param`` refuses such a layer with other blob counts.  From each layer's constructor and
``load_param`` in Tencent/ncnn ``src/layer/``."""

NOT_BUILT = ("ArgMax", "SPP")
"""ncnn types its default build leaves out (``ncnn_add_layer(X OFF)`` in ``src/CMakeLists.txt``): the
runtime (PyPI ``ncnn`` included) refuses a model that uses one (``layer ArgMax not exists or registered``)."""
