"""Lossless int8 image input: the first convolution's int8 input is the pixel itself.

A convolution that reads the image gets ``(p - mean) * norm`` for 8-bit pixels ``p``: 256 values per
channel.  ncnn2table gives it one input scale from a histogram threshold, so its int8 input steps over the
pixel levels unevenly and clips the brightest (SqueezeNet, kl: threshold 128 for values up to 151).  Here
a ``Scale`` layer in front of it maps each channel to ``p - 128`` (``a = 1 / norm``, ``b = mean - 128``),
the convolution's input scale is 1, and its weights and bias absorb the change (``W[:, c] * norm[c]``,
``bias - sum W' b``): the int8 input is exact but for ``p = 0``, which saturates to -127.  A convolution
with padding gets its padding from a ``Padding`` layer that pads each channel with its ``b`` (the image's
zero).  The fp32 model computes the same function (up to float32 rounding); the ``Scale`` costs one pass
over the input.

It needs 8-bit images (not ``.npy`` tensors) and a Convolution (not depthwise, no SAME padding) whose
weights and input are quantized; a deployed app must feed the same ``mean``/``norm`` as calibration, as
with any table.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

from ncnnc.core.ir import Graph, Layer, Weight
from ncnnc.core.params import ParamDict
from ncnnc.core.table import CalibrationTable

PIXEL_ZERO = 128.0
"""The pixel value mapped to int8 zero: ``p - 128`` spans [-128, 127], and only ``p = 0`` saturates."""

_PADS = ("pad_left", "pad_right", "pad_top", "pad_bottom")


def exact_input_layers(graph: Graph, table: CalibrationTable, image_inputs: Sequence[str],
                       fp32_layers: Collection[str] = ()) -> list[Layer]:
    """The int8 Convolutions that read one of the ``image_inputs`` blobs directly and can take the rewrite
    (not those in ``fp32_layers`` or commented out in the table: they stay fp32 and need none)."""
    found = []
    for layer in graph.layers:
        if (layer.type == "Convolution" and layer.inputs and layer.inputs[0] in image_inputs
                and layer.name in table.input_scales and layer.name in table.weight_scales
                and layer.name not in fp32_layers and layer.name not in table.commented
                and min(layer.p(k) for k in _PADS) >= 0 and layer.p("pad_value") == 0
                and not layer.p("dynamic_weight")):
            found.append(layer)
    return found


def make_input_exact(graph: Graph, table: CalibrationTable, conv: Layer, mean: Sequence[float],
                     norm: Sequence[float], weight_scales: Callable[[Layer], np.ndarray]) -> None:
    """Rewrite ``conv`` (reading an image preprocessed with ``mean``/``norm``) and its table entries so its
    int8 input is ``p - 128``; ``weight_scales(layer)`` gives the new weights' scales (the calibrator's rule)."""
    channels = conv.weight("weight").size // (conv.p("num_output") * conv.p("kernel_w") * conv.p("kernel_h"))
    norm_c = np.broadcast_to(np.asarray(norm if len(norm) else [1.0], np.float32), (channels,)).astype(np.float32)
    mean_c = np.broadcast_to(np.asarray(mean if len(mean) else [0.0], np.float32), (channels,)).astype(np.float32)
    shift = (mean_c - np.float32(PIXEL_ZERO)).astype(np.float32)
    src = conv.inputs[0]
    scaled = graph.unique_name(f"{src}_exact")
    scale = Layer("Scale", graph.unique_name(f"{conv.name}_exact_input"), [src], [scaled],
                  ParamDict("Scale", {0: channels, 1: 1}),
                  {"scale": Weight((np.float32(1) / norm_c).astype(np.float32), "fp32"),
                   "bias": Weight(shift, "fp32")})
    graph.insert_before(conv, scale)
    conv.inputs[0] = scaled
    pads = [conv.p(k) for k in _PADS]
    if any(pads):
        padded = graph.unique_name(f"{src}_exact_padded")
        left, right, top, bottom = pads
        padding = Layer("Padding", graph.unique_name(f"{conv.name}_exact_pad"), [scaled], [padded],
                        ParamDict("Padding", {0: top, 1: bottom, 2: left, 3: right, 6: channels}),
                        {"per_channel_pad": Weight(shift.copy(), "fp32")})
        graph.insert_before(conv, padding)
        conv.inputs[0] = padded
        for k in _PADS:
            conv.params[k] = 0
    weight = conv.weight("weight").reshape(conv.p("num_output"), channels, -1) * norm_c[None, :, None]
    correction = (weight * shift[None, :, None]).sum(axis=(1, 2), dtype=np.float64)
    bias = conv.weight("bias").ravel().astype(np.float64) if conv.p("bias_term") else np.zeros(len(correction))
    conv.weights["weight"] = Weight(weight.astype(np.float32).reshape(conv.weight("weight").shape), "fp32")
    conv.weights["bias"] = Weight((bias - correction).astype(np.float32), "raw")
    conv.params["bias_term"] = 1
    table.input_scales[conv.name] = 1.0
    table.weight_scales[conv.name] = np.asarray(weight_scales(conv), np.float32)
