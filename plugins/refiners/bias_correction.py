"""Empirical bias correction (Nagel et al. 2019, section 4.2, empirical form): remove the mean error that a
layer's int8 weights and int8 input add to its output.

For each quantized layer, in model order, the mean over the calibration images and positions of
``int8 output - fp32 output`` before the fused activation is subtracted from the layer's bias, one
value per output channel.  The int8 output is the layer's on its input in the model quantized and
corrected so far.  Before the activation the layer is linear, so that mean is ``W~ m^ - W m``: the int8
weights over their scales times the mean int8 input patch, minus the fp32 weights times the mean
fp32 input patch (exact up to float rounding, with no extra run of the layer).  On the images it saw,
the layer's pre-activation output error then has mean zero per channel.  A layer without a bias gets one.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.int8 import quantize_rows
from ncnnc.core.ir import Weight
from ncnnc.core.refine import LayerStep, Refiner
from ncnnc.plugins.refiners.patches import patch_layout, patch_stats


def channel_mean_error(step: LayerStep) -> np.ndarray | None:
    """Per output channel, the mean of ``int8 output - fp32 output`` before the activation (float64);
    None for a layer whose patches are not supported (grouped convolution)."""
    layout = patch_layout(step.layer)
    if layout is None:
        return None
    groups, rows = layout
    stats = patch_stats(step, moments=False)
    w = step.layer.weight("weight").reshape(groups, rows, -1).astype(np.float64)
    ws = np.asarray(step.weight_scales, np.float32)
    q = quantize_rows(step.layer.weight("weight"), ws).reshape(w.shape).astype(np.float64)
    s = ws.astype(np.float64).reshape(groups, rows) if groups > 1 else ws.astype(np.float64).reshape(1, rows)
    wq = q / s[..., None]
    err = np.einsum("grk,gk->gr", wq, stats.mean_q) - np.einsum("grk,gk->gr", w, stats.mean_f)
    return err.reshape(-1)


def correct_bias(step: LayerStep) -> str | None:
    """Subtract the mean output error from the bias."""
    layer = step.layer
    error = channel_mean_error(step)
    if error is None:
        return "grouped convolution: not corrected"
    bias = layer.weight("bias").astype(np.float64) if layer.p("bias_term") else np.zeros(len(error))
    layer.weights["bias"] = Weight((bias - error).astype(np.float32), "raw")
    layer.params["bias_term"] = 1
    return f"mean |error| {np.abs(error).mean():.3g} removed"


@hookimpl
def ncnnc_refiners() -> list[Refiner]:
    """The ``bias-correction`` refiner (runs after weight rounding)."""
    return [Refiner("bias-correction", "subtract each channel's mean int8 output error from its bias (empirical)",
                    correct_bias, order=200)]
