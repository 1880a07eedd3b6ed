"""The numpy reference backend: an interpreter with ncnn's exact layer semantics.

Usage::

    from ncnnc.backends.numpy import Interpreter
    interp = Interpreter(graph)
    out = interp.run({"data": batch})            # batch: (N, c, h, w) float32
    interp.run({"data": batch}, outputs=graph.blobs, observe=lambda name, a: ...)

Op registry (how layer types plug in)
-------------------------------------
Each ncnn layer type is one small :class:`Op` subclass registered by name and *variant*::

    from ncnnc.backends.numpy import Op, register_op

    @register_op("Convolution", variant="int8")
    class Int8Convolution(Op):
        def __init__(self, layer): ...          # prepare weights once
        def run(self, x): ...                   # x: (N, c, h, w) -> output array(s)

Variant selection: :func:`select_variant` gives ``"int8"`` for a layer whose params have a
non-zero ``int8_scale_term`` (Convolution, ConvolutionDepthWise, InnerProduct ... as ncnn2int8
writes them) and ``"fp32"`` for every other layer.  Layer types that only exist in int8 models
(Quantize, Dequantize, Requantize) therefore register under the default variant ``"fp32"``.
The built-in ops live in the ``*_ops`` modules listed in ``registry.BUILTIN_OP_MODULES``; they are
imported on first use, ``int8_ops`` included, and registering the same pair again overrides it.
"""

from __future__ import annotations

from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.backends.numpy.registry import (
    FP32,
    INT8,
    Op,
    make_op,
    op_class,
    register_op,
    registered_ops,
    select_variant,
)
from ncnnc.core.backend import Backend
from ncnnc.core.hookspecs import hookimpl

__all__ = ["FP32", "INT8", "Interpreter", "Op", "make_op", "op_class", "register_op", "registered_ops",
           "select_variant"]


@hookimpl
def ncnnc_backends() -> list[Backend]:
    """The numpy interpreter."""
    return [Backend("numpy", "reference interpreter with ncnn's semantics (fp32, int8 simulation)",
                    "interpreter", Interpreter)]
