"""A literal transcription of ncnn2table's KL search (one threshold at a time, float32), for tests."""

from __future__ import annotations

import math

import numpy as np

F = np.float32


def _levels(t: int, target_bin: int):
    """ncnn2table's per-level bounds for bin count t: (left_upper, left_scale, right_lower, right_scale)."""
    per = F(t) / F(target_bin)
    for j in range(target_bin):
        start, end = F(j * per), F((j + 1) * per)
        lu, rl = math.ceil(start), math.floor(end)
        if j == target_bin - 1:
            rl = t
        yield j, lu, F(lu - start) if j > 0 else F(0), rl, F(end - rl) if j < target_bin - 1 else F(0)


def reference_kl_at(hn: np.ndarray, t: int, target_bin: int = 128) -> float:
    """ncnn2table's divergence for bin count t, from the float32 normalised histogram ``hn``."""
    eps = F(0.0001)
    clip = hn[:t] + eps
    clip[t - 1] += hn[t:].sum(dtype=np.float32)
    per = F(t) / F(target_bin)
    q = np.zeros(target_bin, dtype=np.float32)
    expand = np.full(t, eps, dtype=np.float32)
    bounds = list(_levels(t, target_bin))
    for j, lu, ls, rl, rs in bounds:
        acc = hn[lu:rl].sum(dtype=np.float32)
        if ls > 0:
            acc += ls * hn[lu - 1]
        if rs > 0:
            acc += rs * hn[rl]
        q[j] = acc / per
    for j, lu, ls, rl, rs in bounds:
        if ls > 0:
            expand[lu - 1] += ls * q[j]
        if rs > 0:
            expand[rl] += rs * q[j]
        expand[lu:rl] += q[j]
    return float(np.sum(clip * np.log(clip / expand), dtype=np.float32))


def reference_kl(histogram: np.ndarray, target_bin: int = 128) -> tuple[int, np.ndarray]:
    """Best bin count (first minimum) and every candidate's divergence."""
    h = np.asarray(histogram, dtype=np.float64)
    hn = (h / h.sum()).astype(np.float32)
    kls = np.array([reference_kl_at(hn, t, target_bin) for t in range(target_bin, hn.size)])
    return int(np.argmin(kls)) + target_bin, kls
