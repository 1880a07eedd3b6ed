"""Learned weight rounding (AdaRound, Nagel et al. 2020): choose, per int8 weight, rounding down or up so
that the layer's output on the calibration images is reconstructed best, instead of rounding to nearest.

AdaRound's objective for one layer is ``E ||W~ x^ - W x||^2``: ``x`` the layer's fp32 input, ``x^`` its
input in the model quantized so far as the int8 layer sees it (``float2int8(x * s) / s``, "asymmetric
reconstruction"), ``W~ = q / scale`` the int8 weights with each ``q`` in ``{floor(w * scale),
floor(w * scale) + 1}``.  Before the activation the layer is linear, so the objective is exactly the
quadratic form ``w~' A w~ - 2 w~' C w + w' F w`` per output channel with the second moments
``A = E[x^ x^']``, ``C = E[x^ x']``, ``F = E[x x']`` of the input patches (``K x K`` for ``K`` weights per
channel; one per channel for depthwise).  With bias correction on, moments are centred (the mean error
is the bias's job, the rounding minimises the error's variance).

The moments replace the data: AdaRound's continuous relaxation with a rounding regulariser and Adam
becomes unnecessary, because the binary quadratic problem is small.  It is solved by coordinate descent
from nearest rounding: sweeps over the weights flip a weight's rounding when that lowers the channel's
error, with the gradient ``A q`` updated after each flip, until a sweep flips nothing (at most ``sweeps``).
The result is never worse than nearest on the calibration data.  A layer with fewer than
``adaround_samples`` input patches per weight keeps nearest rounding (too little data to choose from).
Weights stay within ``+-qmax`` (``31`` for ncnn2table's 6-bit winograd convolutions), and the channels of
an 8-bit winograd convolution within the sum ncnn's winograd kernels compute exactly
(:data:`~ncnnc.core.winograd.WINOGRAD_SUM_LIMIT`): scales and roundings beyond it are not chosen.

The chosen ``q`` are stored as ``q / scale`` in float32, which the quantizer rounds back to ``q`` exactly.
Costs one pass over each layer's input patches for the moments, then ``sweeps * K`` vector steps.
"""

from __future__ import annotations

import numpy as np

from ncnnc.core.calibration import CalibratorParam
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.int8 import float2int8
from ncnnc.core.ir import Weight
from ncnnc.core.refine import LayerStep, Refiner
from ncnnc.core.winograd import WINOGRAD_SUM_LIMIT
from ncnnc.plugins.refiners.patches import PatchStats, patch_layout, patch_stats


def _quad(x: np.ndarray, m: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x_r' M y_r`` per row: ``x, y (G, R, K)``, ``M (G, K, K)`` -> ``(G, R)``."""
    return np.sum((x @ m) * y, axis=-1)


def reconstruction_error(m: PatchStats, q: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per row, ``E (w~' x^ - w' x)^2`` for int8 rows ``q (G, R, K)`` with scales ``s (G, R)``."""
    wt = q / s[..., None]
    return _quad(wt, m.a, wt) - 2 * _quad(wt, m.c, w) + _quad(w, m.f, w)


def learn_rounding(w: np.ndarray, s: np.ndarray, qmax: int, m: PatchStats, sweeps: int) -> tuple[np.ndarray, int]:
    """Coordinate descent over up/down rounding from nearest: ``(q (G, R, K), flips)``."""
    ws = (w.astype(np.float32) * s[..., None].astype(np.float32)).astype(np.float32)
    q = nearest(w, s, qmax)
    lo, hi = np.floor(ws).astype(np.float64), np.floor(ws).astype(np.float64) + 1
    movable = (np.abs(q) <= qmax) & ((q == lo) | (q == hi))
    s64 = s.astype(np.float64)[..., None]
    b = (w.astype(np.float64) @ m.c.transpose(0, 2, 1)) * s64  # s * C w, in q units
    u = q @ m.a                                                   # A q (A is symmetric)
    diag = np.diagonal(m.a, axis1=1, axis2=2)[:, None, :]
    flips = 0
    for _ in range(sweeps):
        changed = 0
        for k in range(q.shape[2]):
            delta = np.where(q[:, :, k] == lo[:, :, k], 1.0, -1.0)
            target = q[:, :, k] + delta
            gain = 2 * delta * (u[:, :, k] - b[:, :, k]) + diag[:, :, k]
            ok = movable[:, :, k] & (np.abs(target) <= qmax) & (gain < -1e-12 * (diag[:, :, k] + 1e-30))
            if not ok.any():
                continue
            g, r = np.nonzero(ok)
            q[g, r, k] += delta[g, r]
            u[g, r] += delta[g, r][:, None] * m.a[g, k, :]
            changed += len(g)
        flips += changed
        if not changed:
            break
    return q, flips


def nearest(w: np.ndarray, s: np.ndarray, qmax: int) -> np.ndarray:
    """The quantizer's rounding of ``w (G, R, K)`` with scales ``s (G, R)``, saturated to ``+-qmax``."""
    return np.clip(float2int8(w * s[..., None].astype(np.float32)).astype(np.float64), -qmax, qmax)


def within_budget(q: np.ndarray, budget: bool) -> np.ndarray:
    """Per row of ``q (G, R, K)``, whether ncnn's winograd computes it exactly (always true without ``budget``)."""
    return np.abs(q).sum(axis=-1) <= WINOGRAD_SUM_LIMIT if budget else np.ones(q.shape[:-1], bool)


def search_scales(w: np.ndarray, s: np.ndarray, qmax: int, m: PatchStats, grid: int, widest: float,
                  budget: bool = False) -> np.ndarray:
    """Per row, the scale among ``s * f`` (``f`` from 1 to ``widest`` in ``grid`` steps: clipping the largest
    weights for finer steps) whose nearest rounding reconstructs the output best (with ``budget``, among
    the larger scales only those whose weights stay within the winograd sum limit)."""
    factors = np.linspace(1.0, widest, max(grid, 1))
    w64 = w.astype(np.float64)
    best, best_err = s.copy(), None
    for f in factors:
        cand = (s * np.float32(f)).astype(np.float32)
        q = nearest(w, cand, qmax)
        err = reconstruction_error(m, q, cand, w64)
        better = np.ones(err.shape, bool) if best_err is None else (err < best_err) & within_budget(q, budget)
        best = np.where(better, cand, best)
        best_err = err if best_err is None else np.where(better, err, best_err)
    return best


def round_layer(step: LayerStep) -> str | None:
    """Learn the rounding of one layer's weights and store them as ``q / scale``."""
    layer = step.layer
    layout = patch_layout(layer)
    if layout is None:
        return "grouped convolution: nearest rounding kept"
    groups, rows = layout
    weight = layer.weight("weight")
    w = weight.reshape(groups, rows, -1).astype(np.float32)
    ws = np.asarray(step.weight_scales, np.float32).ravel()
    s = np.broadcast_to(ws.reshape(-1, 1) if groups > 1 else ws.reshape(1, -1), (groups, rows)).astype(np.float32)
    m = patch_stats(step, moments=True)
    if "bias-correction" in step.methods:
        m.centre()
    if m.count < float(step.params["adaround_samples"]) * w.shape[2]:
        return f"{m.count} patches for {w.shape[2]} weights per channel: nearest rounding kept"
    w64 = w.astype(np.float64)
    before = reconstruction_error(m, nearest(w, s, step.qmax), s, w64)
    s = search_scales(w, s, step.qmax, m, int(step.params["adaround_scale_grid"]),
                      float(step.params["adaround_scale_max"]), step.winograd_budget)
    start = nearest(w, s, step.qmax)
    q, flips = learn_rounding(w, s, step.qmax, m, int(step.params["adaround_sweeps"]))
    after = reconstruction_error(m, q, s, w64)
    keep = (after <= reconstruction_error(m, start, s, w64)) & within_budget(q, step.winograd_budget)
    q = np.where(keep[..., None], q, start)  # float noise guard; rounded up beyond the winograd limit
    learned = (q / s[..., None].astype(np.float64)).astype(np.float32)
    layer.weights["weight"] = Weight(learned.reshape(weight.shape), "fp32")
    step.weight_scales = s.reshape(-1).astype(np.float32)
    total_before, total_after = float(before.sum()), float(reconstruction_error(m, q, s, w64).sum())
    return (f"{flips} of {q.size} roundings flipped, output MSE {total_before:.4g} -> {total_after:.4g}"
            if total_before > 0 else f"{flips} roundings flipped")


@hookimpl
def ncnnc_refiners() -> list:
    """The ``adaround`` refiner (runs before bias correction)."""
    return [Refiner("adaround", "learned up/down rounding of int8 weights minimising each layer's output error",
                    round_layer, order=100, params=(
                        CalibratorParam("adaround_sweeps", 8, "coordinate-descent sweeps over the weights at most"),
                        CalibratorParam("adaround_samples", 4.0, "input patches needed per weight of a channel"),
                        CalibratorParam("adaround_scale_grid", 16,
                                        "weight scales tried per channel (1: the table's only)"),
                        CalibratorParam("adaround_scale_max", 1.5, "largest weight scale tried, times the table's"),
                    ))]
