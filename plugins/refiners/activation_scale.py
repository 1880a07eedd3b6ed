"""Activation-scale search: choose each int8 layer's input scale to minimise the layer's output error, with its
int8 weights and on its input in the model quantized so far, instead of the calibrator's histogram criterion.

A calibrator (kl, aciq, ...) picks a layer's input threshold from the fp32 activation histogram alone: it
cannot see which values the layer's weights amplify, the errors of the int8 layers before it, or that a
ReLU after the layer discards negative errors.  For each quantized layer, in model order, this refiner
tries input scales ``s * f`` (the table's ``s``, ``f`` from ``1 / act_scale_max`` to ``act_scale_max`` in
``act_scale_grid`` geometric steps) and keeps the one whose output, after the layer's fused activation,

    E || act(W~ float2int8(x^ * s f) / (s f) + b) - act(W x + b) ||^2

is smallest on ``act_scale_images`` of the refine images (``x^`` the quantized model's input, ``x`` the fp32
one, ``W~`` the int8 weights over their scales).  The table keeps the chosen scale (as the table text holds
it: :func:`~ncnnc.core.table.format_scale`), so the model is a plain int8 ncnn model with another input scale.
Runs before learned rounding and bias correction, which then work on the input as quantized with the chosen
scale.  The table's
scale is kept unless another is better on these images, so the layer's output error never grows.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.calibration import CalibratorParam
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Layer
from ncnnc.core.refine import LayerStep, Refiner, dequantize_input, fake_quantized, run_op
from ncnnc.core.table import as_written


def candidate_scales(scale: float, grid: int, widest: float) -> list[float]:
    """The table's ``scale`` first, then ``scale * f`` for ``grid`` factors from ``1 / widest`` to ``widest``
    (geometric), as the table holds them, without repeats or non-positive values."""
    out = [as_written(scale)]
    for f in np.geomspace(1.0 / widest, widest, max(grid, 1)) if widest > 1 else []:
        v = as_written(scale * f)
        if v > 0 and v not in out:
            out.append(v)
    return out


def sample(x: np.ndarray, count: int) -> np.ndarray:
    """``count`` images of the batch ``x``, spread evenly over it (all of them when there are fewer)."""
    if count <= 0 or x.shape[0] <= count:
        return x
    return x[np.unique(np.linspace(0, x.shape[0] - 1, count).round().astype(int))]


def output_error(layer: Layer, weight_scales: np.ndarray, scale: float, reference: np.ndarray,
                 xq: np.ndarray, asymmetric: bool = False) -> float:
    """Mean squared error of the int8 ``layer``'s output (after its activation) on ``xq`` quantized with
    ``scale`` (asymmetrically: :func:`~ncnnc.core.refine.dequantize_input`), against ``reference``."""
    out = run_op(fake_quantized(layer, weight_scales), [dequantize_input(xq, scale, asymmetric)])
    return float(np.mean((out.astype(np.float64) - reference) ** 2))


def search_input_scale(step: LayerStep) -> str | None:
    """Set ``step.input_scale`` to the candidate with the smallest error (see the module docstring); the
    layers sharing the input (``step.input_shared``) count too, as they will get the same scale."""
    old = float(step.input_scale)
    if step.input_scale_fixed:
        return f"input scale {old:.4g} shared with an earlier reader of the same blob"
    candidates = candidate_scales(old, int(step.params["act_scale_grid"]), float(step.params["act_scale_max"]))
    count = int(step.params["act_scale_images"])
    xq, xf = sample(step.x_quant, count), sample(step.x_fp32, count)
    errors = np.zeros(len(candidates))
    for layer, weight_scales in ((step.layer, step.weight_scales), *step.input_shared):
        reference = run_op(layer, [xf]).astype(np.float64)
        errors += [output_error(layer, weight_scales, s, reference, xq, step.asymmetric) for s in candidates]
    best = int(np.argmin(errors))  # the table's scale (first) wins ties
    if best == 0:
        return f"table scale {old:.4g} kept (error {errors[0]:.4g})"
    step.input_scale = candidates[best]
    step.cache.clear()  # the dequantized input and patch statistics depend on the scale
    return f"input scale {old:.4g} -> {candidates[best]:.4g}, error {errors[0]:.4g} -> {errors[best]:.4g}"


@hookimpl
def ncnnc_refiners() -> list[Refiner]:
    """The ``act-scale`` refiner (runs first: rounding and bias correction then see the chosen scale)."""
    return [Refiner("act-scale", "search each int8 layer's input scale for the smallest output error",
                    search_input_scale, order=50, params=(
                        CalibratorParam("act_scale_grid", 16, "input scales tried per layer besides the table's"),
                        CalibratorParam("act_scale_max", 2.0, "widest factor tried, up and down (geometric)"),
                        CalibratorParam("act_scale_images", 32, "refine images the search measures on (0: all)"),
                    ))]
