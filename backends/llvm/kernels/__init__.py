"""The kernel families.  Importing this package registers every built-in lowering.

One module per family: ``convert`` (layout and dtype changes at the model's boundary), ``quant``
(int8 input preparation, Quantize/Dequantize/Requantize), ``conv`` (Convolution and
ConvolutionDepthWise, int8 and fp32), ``innerproduct``, ``pool``, ``elementwise`` (activations,
BinaryOp, Eltwise), ``shape`` (in-place Concat, Split), ``layout`` (Slice, ShuffleChannel, Flatten,
Reshape...), ``softmax``.
"""

from ncnnc.backends.llvm.kernels import (  # noqa: F401
    conv,
    convert,
    elementwise,
    innerproduct,
    layout,
    pool,
    quant,
    shape,
    softmax,
)
