"""The op registry of the numpy backend: one :class:`Op` class per ncnn layer type and variant.

An op is built once per layer (``Op(layer)``, where it may prepare its weights) and then called
with the layer's input arrays, each batched with a leading ``N`` axis.  Variants let one layer type
have several arithmetic forms: ``"fp32"`` (the plain form) and ``"int8"`` (layers whose
``int8_scale_term`` is non-zero, simulated the way ncnn's int8 kernels compute).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ncnnc.core.errors import UnsupportedError
from ncnnc.core.ir import Layer

FP32 = "fp32"
INT8 = "int8"


class Op:
    """One layer's computation.  Subclasses override :meth:`run` (and ``__init__`` to prepare weights).

    ``run`` receives one array per input blob, each shaped ``(N, *ncnn_shape)`` in numpy order
    (``(N, c, h, w)``, ``(N, h, w)`` or ``(N, w)``), and returns one array or a sequence of arrays,
    one per output blob.  It must not modify its inputs in place: blobs are shared between consumers.
    An op without inputs (``MemoryData``) returns a batch of one; the interpreter broadcasts it.
    """

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.p = layer.params

    def run(self, *inputs: np.ndarray) -> np.ndarray | Sequence[np.ndarray]:
        """Compute the layer's outputs from its inputs."""
        raise NotImplementedError

    def unsupported(self, what: str) -> UnsupportedError:
        """A user error naming this layer, for a parameter combination the backend does not handle."""
        return UnsupportedError(f"numpy backend: {self.layer.type} {what} is not supported",
                                where=f"layer {self.layer.name}")


OpClass = type[Op]
_OPS: dict[tuple[str, str], OpClass] = {}


def register_op(layer_type: str, variant: str = FP32) -> Callable[[OpClass], OpClass]:
    """Class decorator: make ``cls`` the implementation of ``layer_type`` in ``variant``.

    Registering a pair again replaces the earlier class (so a plugin can override a built-in op).
    """

    def decorate(cls: OpClass) -> OpClass:
        _OPS[(layer_type, variant)] = cls
        return cls

    return decorate


def select_variant(layer: Layer) -> str:
    """The variant a layer runs in: ``"int8"`` when it has a non-zero ``int8_scale_term``, else ``"fp32"``."""
    schema = layer.params.schema
    if schema is not None and "int8_scale_term" in schema.by_name and layer.p("int8_scale_term"):
        return INT8
    return FP32


def op_class(layer_type: str, variant: str = FP32) -> OpClass | None:
    """The registered class for a layer type and variant, or None; a custom layer's fp32 op comes from
    the plugins' ``ncnnc_layer_implementations``."""
    _load_builtin_ops()
    cls = _OPS.get((layer_type, variant))
    if cls is None and variant == FP32:
        from ncnnc.core.registry import registry

        cls = next((r.item.numpy_op for r in registry().all("layer_implementations") if r.item.type == layer_type),
                   None)
    return cls


def registered_ops() -> list[tuple[str, str]]:
    """Every registered ``(layer_type, variant)`` pair, sorted."""
    _load_builtin_ops()
    return sorted(_OPS)


def make_op(layer: Layer, family: str | None = None) -> Op:
    """Build the op that runs ``layer`` (variant from :func:`select_variant`); an op whose class sets
    ``cpu_dependent`` computes as ncnn does on the CPU ``family`` (``"x86"`` or ``"arm"``; default: this
    machine's, see :mod:`~ncnnc.backends.numpy.cpu_family`)."""
    variant = select_variant(layer)
    cls = op_class(layer.type, variant)
    if cls is None:
        raise UnsupportedError(f"numpy backend has no {variant} implementation of layer type {layer.type}",
                               where=f"layer {layer.name}")
    return cls(layer, family) if getattr(cls, "cpu_dependent", False) else cls(layer)


_LOADED = False


def _load_builtin_ops() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib

    for module in BUILTIN_OP_MODULES:
        importlib.import_module(module)


BUILTIN_OP_MODULES = tuple(f"ncnnc.backends.numpy.{m}" for m in (
    "activation_ops", "arith_ops", "conv_ops", "pool_ops", "reduce_ops", "shape_ops", "norm_ops", "interp_ops",
    "attention_ops", "attention_int8_ops", "int8_ops", "detection_ops", "roi_ops", "layout_ops", "lrn_ops",
    "stat_ops", "recurrent_ops", "window_nd_ops", "tensor_ops"))
"""Modules whose import registers the built-in ops."""
