"""ncnn's sort and non-maximum suppression, step for step, so that ties break as they do in ncnn.

ncnn's detection layers sort candidates with their own quicksort (``qsort_descent_inplace``: Hoare
partition around the middle element, not stable) and then keep a box unless it overlaps an already kept
one by more than the threshold.  Equal scores therefore end up in the order that quicksort leaves them,
which :func:`qsort_descent` reproduces exactly.  Box arithmetic is float32, as in ncnn.
"""

from __future__ import annotations

import numpy as np


def qsort_descent(scores: np.ndarray) -> np.ndarray:
    """The permutation ncnn's ``qsort_descent_inplace`` applies to ``scores`` (sorted descending)."""
    s = [float(v) for v in np.asarray(scores, np.float32)]
    order = list(range(len(s)))
    stack = [(0, len(s) - 1)] if s else []
    while stack:
        left, right = stack.pop()
        i, j = left, right
        p = s[(left + right) // 2]
        while i <= j:
            while s[i] > p:
                i += 1
            while s[j] < p:
                j -= 1
            if i <= j:
                s[i], s[j] = s[j], s[i]
                order[i], order[j] = order[j], order[i]
                i += 1
                j -= 1
        if left < j:
            stack.append((left, j))
        if i < right:
            stack.append((i, right))
    return np.asarray(order, dtype=np.int64)


def intersection(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """float32 intersection areas of one ``(x1, y1, x2, y2)`` box with each of ``boxes`` (0 when apart)."""
    apart = (box[0] > boxes[:, 2]) | (box[2] < boxes[:, 0]) | (box[1] > boxes[:, 3]) | (box[3] < boxes[:, 1])
    width = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    height = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return np.where(apart, np.float32(0), width * height).astype(np.float32)


def nms_sorted(boxes: np.ndarray, threshold: float, areas: np.ndarray | None = None,
               multiply: bool = False) -> list[int]:
    """Indices of the boxes kept, in order, from boxes already sorted by descending score.

    ncnn's two forms: ``inter / union > threshold`` drops a box (most layers), or with ``multiply``
    ``inter > threshold * union`` (Yolov3DetectionOutput, which also brings its own ``areas``).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if areas is None:
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    areas = np.asarray(areas, np.float32)
    thr = np.float32(threshold)
    picked: list[int] = []
    for i in range(len(boxes)):
        if picked:
            idx = np.asarray(picked)
            inter = intersection(boxes[i], boxes[idx])
            union = areas[i] + areas[idx] - inter
            with np.errstate(divide="ignore", invalid="ignore"):
                drop = inter > thr * union if multiply else inter / union > thr
            if drop.any():
                continue
        picked.append(i)
    return picked
