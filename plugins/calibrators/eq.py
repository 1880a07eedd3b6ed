"""``eq``: ncnn2table's EQ, a per-layer search for the scales whose int8 output is closest to fp32.

As ncnn2table (``quantize_EQ``): start from the ``kl`` table; for each quantized layer in model
order, first each weight scale in turn, then the input scale, is replaced by the best of
``steps`` candidates ``scale * lower + k * scale * (upper - lower) / steps`` (k = 0 ... steps-1;
the original scale itself is not a candidate), the best maximising the cosine similarity of the
layer's int8 output with its fp32 output, averaged over the first ``images`` images (the fp32
input of the layer, as in ncnn2table).  A candidate must beat an average similarity of 0.

The layer's int8 output is simulated as ncnn computes it: the input multiplied by its scale,
rounded half away from zero and clamped to [-127, 127]; weights likewise per output channel (per
group for depthwise); integer accumulation; ``acc / (input_scale * weight_scale) + bias``; the
layer's fused activation.

ncnn2table rebuilds the whole layer for every candidate of every channel.  Here a weight scale
changes only its own output channels, so all candidates of a channel are computed in one
convolution with the candidates stacked as extra output channels, and the cosine of the whole
output is updated from per-channel sums as the channels are decided one after another (exactly
the sequence ncnn2table follows).  ncnn2table reads the image list of the wrong input and index
inside this search and crashes; here each image is used as intended.  The search costs about
``2 * steps`` runs of each layer per image, so ``images`` defaults to 10 (ncnn2table: 50).

Both stages run through the calibration's executor (local processes or a Dask cluster): each shard
of images returns its per-image sums (weights) or cosines (input), which are concatenated in shard
order before the choice, so the result does not depend on how the images were shared out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncnnc.backends.numpy import make_op
from ncnnc.backends.numpy.blas import single_thread
from ncnnc.backends.numpy.common import activate
from ncnnc.core.calibration import (
    CalibratorFactory,
    CalibratorParam,
    RefineContext,
    Target,
    load_groups,
    quant_targets,
    weight_rows,
)
from ncnnc.core.executors import Worker
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.int8 import float2int8
from ncnnc.core.ir import Layer, Weight
from ncnnc.core.winograd import is_winograd_conv, within_winograd_budget
from ncnnc.plugins.calibrators.kl import KLCalibrator

CHUNK_FLOATS = 1 << 23
"""Rough bound on the size of one stacked-candidate output (floats), to bound memory."""


# -- the int8 layer -------------------------------------------------------------------------------
class Int8Layer:
    """Integer accumulation of a Convolution / ConvolutionDepthWise / InnerProduct on int8 values.

    ``rows`` are the weight rows that share a scale (output channels, or groups for depthwise);
    each row feeds ``per_row`` output channels.
    """

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.rows = weight_rows(layer)
        self.group = int(layer.p("group")) if layer.type == "ConvolutionDepthWise" else 1
        self.per_row = int(layer.p("num_output")) // len(self.rows)
        self.bias = layer.weight("bias") if layer.p("bias_term") else np.zeros(layer.p("num_output"), np.float32)
        self.act = (int(layer.p("activation_type")), layer.p("activation_params"))

    def accumulate(self, xq: np.ndarray, wq: np.ndarray, variants: int, first: int = 0) -> np.ndarray:
        """Accumulators ``(N, R, variants, per_row, P)`` for ``wq (R, variants, per_row * K)``.

        ``xq`` are int8 values (as float32) of the layer input, ``(N, ...)``; ``wq`` holds weight
        rows ``first ... first + R - 1`` (a depthwise layer then reads only their groups' channels).
        """
        r = wq.shape[0]
        if self.group > 1:
            per_group = xq.shape[1] // self.group
            xq = xq[:, first * per_group:(first + r) * per_group]
        tmp = self.layer.clone()
        tmp.weights = {}
        stacked = wq.reshape(r * variants * self.per_row, -1)
        tmp.params["num_output"] = stacked.shape[0]
        tmp.params["bias_term"] = 0
        tmp.params["activation_type"] = 0
        tmp.params["weight_data_size"] = stacked.size
        if self.layer.type == "InnerProduct":
            tmp.weights["weight"] = Weight(np.ascontiguousarray(stacked, dtype=np.float32))
        else:
            kh, kw = int(self.layer.p("kernel_h")), int(self.layer.p("kernel_w"))
            tmp.weights["weight"] = Weight(np.ascontiguousarray(
                stacked.reshape(stacked.shape[0], -1, kh, kw), dtype=np.float32))
            if self.layer.type == "ConvolutionDepthWise":
                tmp.params["group"] = r
        out = make_op(tmp).run(xq)
        return out.reshape(out.shape[0], r, variants, self.per_row, -1)

    def output(self, acc: np.ndarray, input_scale: np.ndarray, weight_scale: np.ndarray,
               rows: slice) -> np.ndarray:
        """Dequantize ``acc (N, R, V, per_row, P)``: ``acc / (input_scale * weight_scale) + bias``, activated.

        ``weight_scale`` is ``(R, V)``, ``input_scale`` broadcastable to ``(N, 1, V, 1, 1)``.
        """
        denom = (np.asarray(input_scale, np.float32) * weight_scale[None, :, :, None, None]).astype(np.float32)
        bias = self.bias.reshape(len(self.rows), 1, self.per_row, 1)[rows][None]
        out = (acc * (np.float32(1) / denom) + bias).astype(np.float32, copy=False)
        return activate(out, self.act[0], self.act[1], f"layer {self.layer.name}")


def quantize(x: np.ndarray, scale: Any) -> np.ndarray:
    """ncnn's float -> int8 of ``x * scale`` (float32), returned as float32 integers."""
    return float2int8(np.asarray(x, np.float32) * np.asarray(scale, np.float32)).astype(np.float32)


def candidates(scale: np.ndarray, steps: int, lower: float, upper: float) -> np.ndarray:
    """ncnn2table's grid ``lo + k * (hi - lo) / steps`` per scale, in float32: ``(len(scale), steps)``."""
    s = np.asarray(scale, np.float32).reshape(-1, 1)
    lo, hi = s * np.float32(lower), s * np.float32(upper)
    step = (hi - lo) / np.float32(steps)
    return (lo + np.arange(steps, dtype=np.float32) * step).astype(np.float32)


# -- the search for one layer ------------------------------------------------------------------------
class LayerSearch:
    """EQ statistics of one layer over images: per-channel candidate sums, then input-scale cosines."""

    def __init__(self, target: Target, weight_scales: np.ndarray, input_scale: float,
                 steps: int, lower: float, upper: float) -> None:
        self.target = target
        self.int8 = Int8Layer(target.layer)
        self.steps, self.lower, self.upper = steps, lower, upper
        self.weight_scales = np.asarray(weight_scales, np.float32).copy()
        self.input_scale = np.float32(input_scale)
        self.weight_grid = candidates(self.weight_scales, steps, lower, upper)
        self.allowed = np.ones(self.weight_grid.shape, bool)
        if is_winograd_conv(target.layer):  # scales beyond ncnn's exact int8 winograd are never chosen
            self.allowed = np.stack([within_winograd_budget(self.int8.rows, self.weight_grid[:, k])
                                     for k in range(self.weight_grid.shape[1])], axis=1)
        self.parts: list[tuple[np.ndarray, ...]] = []  # per batch: sa, base_d, base_b, delta_d, delta_b
        self.input_sims: list[np.ndarray] = []          # per batch: (N, steps)

    def _chunk_rows(self, n: int, p: int, variants: int) -> int:
        return max(1, CHUNK_FLOATS // max(1, n * p * variants * self.int8.per_row))

    def observe_weights(self, x: np.ndarray, y: np.ndarray) -> None:
        """Per image and weight row: sums of ``y * y_int8`` and ``y_int8^2`` for every candidate."""
        n = x.shape[0]
        y = y.reshape(n, len(self.int8.rows), self.int8.per_row, -1).astype(np.float64)
        xq = quantize(x, self.input_scale)
        scales = np.concatenate([self.weight_grid, self.weight_scales[:, None]], axis=1)  # last = current
        v = scales.shape[1]
        d = np.empty((n, len(scales), v))
        b = np.empty((n, len(scales), v))
        step = self._chunk_rows(n, y.shape[-1], v)
        for start in range(0, len(scales), step):
            rows = slice(start, start + step)
            w = self.int8.rows[rows]
            wq = quantize(w[:, None, :], scales[rows][:, :, None])
            acc = self.int8.accumulate(xq, wq, v, start)
            out = self.int8.output(acc, self.input_scale, scales[rows], rows).astype(np.float64)
            ref = y[:, rows][:, :, None]
            d[:, rows] = np.einsum("nrvop,nrvop->nrv", out, np.broadcast_to(ref, out.shape))
            b[:, rows] = np.einsum("nrvop,nrvop->nrv", out, out)
        sa = np.einsum("nrop,nrop->n", y, y)
        base_d, base_b = d[:, :, -1].sum(axis=1), b[:, :, -1].sum(axis=1)
        self.parts.append((sa, base_d, base_b, (d[:, :, :-1] - d[:, :, -1:]).astype(np.float32),
                           (b[:, :, :-1] - b[:, :, -1:]).astype(np.float32)))

    def choose_weights(self) -> None:
        """Decide the weight scales row by row, as ncnn2table's sequential search does."""
        sa, dot, norm, delta_d, delta_b = (np.concatenate(parts) for parts in zip(*self.parts))
        root_sa = np.sqrt(sa)
        for r in range(len(self.weight_scales)):
            sims = (dot[:, None] + delta_d[:, r]) / root_sa[:, None] / np.sqrt(norm[:, None] + delta_b[:, r])
            k = _best(np.where(self.allowed[r], np.nan_to_num(sims, nan=0.0).sum(axis=0), -np.inf))
            if k is not None:
                self.weight_scales[r] = self.weight_grid[r, k]
                dot = dot + delta_d[:, r, k]
                norm = norm + delta_b[:, r, k]
        self.parts = []

    def observe_input(self, x: np.ndarray, y: np.ndarray) -> None:
        """Per image: the cosine of the int8 output for every input-scale candidate."""
        n = x.shape[0]
        grid = candidates(np.array([self.input_scale]), self.steps, self.lower, self.upper)[0]
        wq = quantize(self.int8.rows[:, None, :], self.weight_scales[:, None, None])
        y = y.reshape(n, 1, len(self.int8.rows), self.int8.per_row, -1).astype(np.float64)
        sims = np.empty((n, len(grid)))
        per = max(1, CHUNK_FLOATS // max(1, n * y[0].size))
        for start in range(0, len(grid), per):
            g = grid[start:start + per]
            xq = np.concatenate([quantize(x, s) for s in g])            # (len(g) * n, ...)
            acc = self.int8.accumulate(xq, wq, 1)                       # (len(g) * n, R, 1, o, P)
            acc = acc.reshape(len(g), n, len(self.int8.rows), 1, self.int8.per_row, -1)
            out = np.stack([self.int8.output(acc[i], g[i], self.weight_scales[:, None], slice(None))[:, :, 0]
                            for i in range(len(g))], axis=1).astype(np.float64)  # (n, len(g), R, o, P)
            num = np.einsum("ngrop,nrop->ng", out, y[:, 0])
            den = np.sqrt(np.einsum("ngrop,ngrop->ng", out, out)) * np.sqrt(np.einsum("nrop,nrop->n", y[:, 0],
                                                                                     y[:, 0]))[:, None]
            sims[:, start:start + len(g)] = num / den
        self.input_sims.append(sims)

    def choose_input(self) -> None:
        """The input scale with the best average cosine (unchanged if none is positive)."""
        grid = candidates(np.array([self.input_scale]), self.steps, self.lower, self.upper)[0]
        k = _best(np.nan_to_num(np.concatenate(self.input_sims), nan=0.0).sum(axis=0))
        if k is not None:
            self.input_scale = grid[k]
        self.input_sims = []


def _best(total: np.ndarray) -> int | None:
    """ncnn2table's choice: the first candidate with the largest sum, if that sum is above 0."""
    k = int(np.argmax(total))
    return k if total[k] > 0 else None


# -- the refine step ---------------------------------------------------------------------------------
@dataclass
class EqStage:
    """A shard task: one stage of the search (``weights`` or ``input``) over a shard's images.

    Carries only the scales (the workers hold the model); returns per layer what the stage's
    ``observe_*`` collected: the weight stage's per-image sums, or the input stage's cosines.
    """

    stage: str
    scales: list[tuple[str, np.ndarray, float]]  # per layer: name, weight scales, input scale
    steps: int
    lower: float
    upper: float

    def searches(self, targets: Sequence[Target]) -> list[LayerSearch]:
        """One search per layer, starting from the carried scales."""
        by_name = {t.name: t for t in targets}
        return [LayerSearch(by_name[name], w, x, self.steps, self.lower, self.upper) for name, w, x in self.scales]

    def __call__(self, worker: Worker, shard: Sequence[range], tick: Callable[[int], None]) -> list[list[Any]]:
        """The stage's statistics of every layer over the shard's images."""
        searches = self.searches(quant_targets(worker.job.graph))
        wanted = list(dict.fromkeys(b for s in searches for b in (s.target.blob, s.target.layer.outputs[0])))
        with single_thread():  # the int8 layers run outside the interpreter too
            for indices in shard:
                for inputs in load_groups(worker.job.specs, indices):
                    blobs = worker.interpreter().run(inputs, outputs=wanted)
                    for s in searches:
                        x, y = blobs[s.target.blob], blobs[s.target.layer.outputs[0]]
                        (s.observe_weights if self.stage == "weights" else s.observe_input)(x, y)
                tick(len(indices))
        return [s.parts if self.stage == "weights" else s.input_sims for s in searches]


def refine(ctx: RefineContext) -> None:
    """Run EQ over the first ``images`` images and write the chosen scales into ``ctx.table``."""
    p = ctx.params
    steps, lower, upper, images = int(p["steps"]), float(p["lower"]), float(p["upper"]), int(p["images"])
    searches = [LayerSearch(t, ctx.table.weight_scales[t.name], ctx.table.input_scales[t.name], steps, lower, upper)
                for t in ctx.targets]
    for stage in ("weights", "input"):
        task = EqStage(stage, [(s.target.name, s.weight_scales, float(s.input_scale)) for s in searches],
                       steps, lower, upper)
        for shard_result in ctx.map_shards(task, images, f"eq: {stage} scales"):
            for s, collected in zip(searches, shard_result):
                (s.parts if stage == "weights" else s.input_sims).extend(collected)
        for s in searches:
            (s.choose_weights if stage == "weights" else s.choose_input)()
    for s in searches:
        ctx.table.weight_scales[s.target.name] = s.weight_scales
        ctx.table.input_scales[s.target.name] = float(s.input_scale)


@hookimpl
def ncnnc_calibrators() -> list[CalibratorFactory]:
    """The ``eq`` calibrator."""
    return [CalibratorFactory(
        name="eq", description="ncnn2table's EQ: kl, then per-layer scale search maximising int8/fp32 cosine",
        create=KLCalibrator, refine=refine,
        refine_params=(
            CalibratorParam("images", 10, "images used by the search (ncnn2table: 50; each costs ~200 layer runs)"),
            CalibratorParam("steps", 100, "candidates per scale"),
            CalibratorParam("lower", 0.5, "smallest candidate, times the starting scale"),
            CalibratorParam("upper", 2.0, "the candidates span [lower, upper) times the starting scale"),
        ))]
