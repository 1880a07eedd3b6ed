"""Detection post-processing in fp32, as ncnn computes it: PriorBox, DetectionOutput, YoloDetectionOutput,
Yolov3DetectionOutput, Proposal.

These layers run per sample.  Their output count depends on the data; within a batch, samples with
fewer rows are padded with zero rows to the longest (ncnn has no batch; a batch of one is exact).
Arithmetic is float32 in ncnn's order; candidates are sorted and suppressed by :mod:`.nms`, which
breaks ties as ncnn does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ncnnc.backends.numpy.nms import nms_sorted, qsort_descent
from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.shapes_extra import float_list, float_value, priorbox_is_mxnet

F = np.float32


def per_sample(fn: Callable[..., np.ndarray], *inputs: np.ndarray) -> np.ndarray:
    """``fn`` on each sample; results stacked, row counts padded with zeros to the longest."""
    results = [fn(*(x[n] for x in inputs)) for n in range(inputs[0].shape[0])]
    if all(r.shape == results[0].shape for r in results):
        return np.stack(results)
    rows = max(r.shape[0] for r in results)
    out = np.zeros((len(results), rows, *results[0].shape[1:]), np.float32)
    for n, r in enumerate(results):
        out[n, : r.shape[0]] = r
    return out


def _whc(x: np.ndarray) -> tuple[int, int, int]:
    shape = (1,) * (3 - x.ndim) + x.shape[-3:]
    return shape[2], shape[1], shape[0]


def _steps(start: np.float32, step: np.float32, count: int) -> np.ndarray:
    """``start`` then ``+= step`` ``count - 1`` times, accumulated in float32 as ncnn does."""
    values = np.full(count, step, F)
    values[0] = start
    return np.cumsum(values, dtype=F)


@register_op("PriorBox")
class PriorBox(Op):
    """SSD prior boxes: row 0 the boxes (x1, y1, x2, y2 per prior), row 1 the variances."""

    def run(self, feat: np.ndarray, *image: np.ndarray) -> np.ndarray:
        """The priors of the feature map's size (the same for every sample)."""
        w, h, _ = _whc(feat[0])
        img = (_whc(image[0][0]) if image else (0, 0, 0))
        out = self._mxnet(w, h) if priorbox_is_mxnet(self.layer, 1 + len(image)) else self._caffe(w, h, img)
        return np.broadcast_to(out, (feat.shape[0], *out.shape))

    def _mxnet(self, w: int, h: int) -> np.ndarray:
        p = self.p
        sw, sh = float_value(p["step_width"]), float_value(p["step_height"])
        step_w = F(1) / F(w) if sw == -233 else F(sw)
        step_h = F(1) / F(h) if sh == -233 else F(sh)
        sizes = np.asarray(float_list(self.layer, 0), F)
        ratios = np.asarray(float_list(self.layer, 2), F)
        half = [(s * F(h) / F(w) / F(2), s / F(2)) for s in sizes]
        for r in ratios[1:]:
            sr = np.sqrt(r)
            half.append((sizes[0] * F(h) / F(w) * sr / F(2), sizes[0] / sr / F(2)))
        offset = F(float_value(p["offset"]))
        cx = _steps(offset * step_w, step_w, w)
        cy = offset * step_h + np.arange(h, dtype=F) * step_h
        boxes = self._boxes(cx, cy, [(F(2) * a, F(2) * b) for a, b in half], 1.0, 1.0, halves=half)
        return np.clip(boxes, 0, 1) if p["clip"] else boxes

    def _caffe(self, w: int, h: int, img: tuple[int, int, int]) -> np.ndarray:
        p = self.p
        image_w = img[0] if p["image_width"] == -233 else p["image_width"]
        image_h = img[1] if p["image_height"] == -233 else p["image_height"]
        step_w, step_h = F(float_value(p["step_width"])), F(float_value(p["step_height"]))
        if step_w == -233:
            step_w = F(image_w) / F(w)
            step_w = np.ceil(step_w) if p["step_mmdetection"] else step_w
        if step_h == -233:
            step_h = F(image_h) / F(h)
            step_h = np.ceil(step_h) if p["step_mmdetection"] else step_h
        offset = F(float_value(p["offset"]))
        if p["center_mmdetection"]:
            cx = _steps(offset * (step_w - F(1)), step_w, w)
            cy = offset * (step_h - F(1)) + np.arange(h, dtype=F) * step_h
        else:
            cx = _steps(offset * step_w, step_w, w)
            cy = offset * step_h + np.arange(h, dtype=F) * step_h
        sizes = []
        maxs = float_list(self.layer, 1)
        for k, mn in enumerate(F(v) for v in float_list(self.layer, 0)):
            sizes.append((mn, mn))
            if maxs:
                side = np.sqrt(mn * F(maxs[k]))
                sizes.append((side, side))
            for ar in float_list(self.layer, 2):
                bw, bh = mn * np.sqrt(F(ar)), mn / np.sqrt(F(ar))
                sizes.append((bw, bh))
                if p["flip"]:
                    sizes.append((bh, bw))
        boxes = self._boxes(cx, cy, sizes, F(image_w), F(image_h))
        if p["clip"]:
            boxes = np.clip(boxes, 0, 1)
        variances = np.tile(np.asarray([float_value(p[f"variance{i}"]) for i in range(4)], F), boxes.size // 4)
        return np.stack([boxes, variances])

    @staticmethod
    def _boxes(cx: np.ndarray, cy: np.ndarray, sizes: list, image_w, image_h, halves=None) -> np.ndarray:
        """(h, w, prior, 4) boxes flattened; ``halves`` gives the half sizes directly (mxnet form)."""
        halves = halves or [(F(bw) * F(0.5), F(bh) * F(0.5)) for bw, bh in sizes]
        hw = np.asarray([a for a, _ in halves], F)[None, None, :]
        hh = np.asarray([b for _, b in halves], F)[None, None, :]
        x = cx[None, :, None]
        y = cy[:, None, None]
        shape = (len(cy), len(cx), len(halves))
        box = np.empty((*shape, 4), F)
        box[..., 0] = np.broadcast_to((x - hw) / F(image_w), shape)
        box[..., 1] = np.broadcast_to((y - hh) / F(image_h), shape)
        box[..., 2] = np.broadcast_to((x + hw) / F(image_w), shape)
        box[..., 3] = np.broadcast_to((y + hh) / F(image_h), shape)
        return box.reshape(-1)


def _rows(labels: list, scores: list, boxes: list) -> np.ndarray:
    """Output rows (label, score, xmin, ymin, xmax, ymax)."""
    out = np.zeros((len(labels), 6), F)
    if labels:
        out[:, 0] = labels
        out[:, 1] = scores
        out[:, 2:] = np.asarray(boxes, F).reshape(-1, 4)
    return out


@register_op("DetectionOutput")
class DetectionOutput(Op):
    """SSD: decode the locations against the priors, per-class NMS, global sort, keep the top k."""

    def run(self, loc: np.ndarray, conf: np.ndarray, priors: np.ndarray) -> np.ndarray:
        """Detections per sample."""
        return per_sample(self._one, loc, conf, priors)

    def _one(self, loc: np.ndarray, conf: np.ndarray, priors: np.ndarray) -> np.ndarray:
        p = self.p
        mxnet = p["num_class"] == -233
        num_prior = priors.shape[-2] if mxnet else priors.shape[-1] // 4
        num_class = conf.shape[-2] if mxnet else p["num_class"]
        conf = conf.reshape(-1)
        scores = conf.reshape(num_class, num_prior).T if mxnet else conf[: num_prior * num_class].reshape(
            num_prior, num_class)
        pb = priors.reshape(-1)[: num_prior * 4].reshape(num_prior, 4)
        if mxnet:
            var = np.broadcast_to(np.asarray([float_value(p[f"variance{i}"]) for i in range(4)], F), (num_prior, 4))
        else:
            var = priors.reshape(2, -1)[1, : num_prior * 4].reshape(num_prior, 4)
        boxes = self._decode(loc.reshape(-1)[: num_prior * 4].reshape(num_prior, 4), pb, var)
        thr = F(float_value(p["confidence_threshold"]))
        labels, kept_scores, kept_boxes = [], [], []
        for c in range(1, num_class):
            cand = np.nonzero(scores[:, c] > thr)[0]
            s = scores[cand, c]
            order = qsort_descent(s)
            if 0 <= p["nms_top_k"] < len(order):
                order = order[: p["nms_top_k"]]
            cand, s = cand[order], s[order]
            for k in nms_sorted(boxes[cand], float_value(p["nms_threshold"])):
                labels.append(c)
                kept_scores.append(s[k])
                kept_boxes.append(boxes[cand[k]])
        order = qsort_descent(np.asarray(kept_scores, F))
        if 0 <= p["keep_top_k"] < len(order):
            order = order[: p["keep_top_k"]]
        return _rows([labels[i] for i in order], [kept_scores[i] for i in order], [kept_boxes[i] for i in order])

    @staticmethod
    def _decode(loc: np.ndarray, pb: np.ndarray, var: np.ndarray) -> np.ndarray:
        """CENTER_SIZE decoding in float32."""
        pb_w = pb[:, 2] - pb[:, 0]
        pb_h = pb[:, 3] - pb[:, 1]
        pb_cx = (pb[:, 0] + pb[:, 2]) * F(0.5)
        pb_cy = (pb[:, 1] + pb[:, 3]) * F(0.5)
        cx = var[:, 0] * loc[:, 0] * pb_w + pb_cx
        cy = var[:, 1] * loc[:, 1] * pb_h + pb_cy
        with np.errstate(over="ignore"):
            bw = np.exp(var[:, 2] * loc[:, 2]) * pb_w
            bh = np.exp(var[:, 3] * loc[:, 3]) * pb_h
        return np.stack([cx - bw * F(0.5), cy - bh * F(0.5), cx + bw * F(0.5), cy + bh * F(0.5)], axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return F(1) / (F(1) + np.exp(-x))


@register_op("Yolov3DetectionOutput")
class Yolov3DetectionOutput(Op):
    """YOLOv3: decode every scale's boxes, one global sort, NMS across classes."""

    def run(self, *xs: np.ndarray) -> np.ndarray:
        """Detections per sample."""
        return per_sample(self._one, *xs)

    def _one(self, *xs: np.ndarray) -> np.ndarray:
        p = self.p
        nb, nc = p["num_box"], p["num_class"]
        biases, mask = float_list(self.layer, 4), float_list(self.layer, 5)
        scales = float_list(self.layer, 6)
        cands = []  # (score, x1, y1, x2, y2, area, label) arrays per (scale, box)
        for b, x in enumerate(xs):
            c, h, w = x.shape
            if c // nb != 5 + nc:
                raise self.unsupported(f"input {b} with {c} channels for {nb} boxes of {nc} classes")
            net_w, net_h = int(F(scales[b]) * F(w)), int(F(scales[b]) * F(h))
            for pp in range(nb):
                ch = x[pp * (5 + nc):(pp + 1) * (5 + nc)]
                bias = int(mask[pp + b * nb])
                cls = np.argmax(ch[5:], axis=0)
                cls_score = np.take_along_axis(ch[5:], cls[None], 0)[0]
                with np.errstate(over="ignore"):
                    conf = F(1) / (F(1) + np.exp(-ch[4]) * (F(1) + np.exp(-cls_score)))
                keep = conf >= F(float_value(p["confidence_threshold"]))
                ii, jj = np.nonzero(keep)
                cx = (jj.astype(F) + _sigmoid(ch[0][keep])) / F(w)
                cy = (ii.astype(F) + _sigmoid(ch[1][keep])) / F(h)
                with np.errstate(over="ignore"):
                    bw = np.exp(ch[2][keep]) * F(biases[bias * 2]) / F(net_w)
                    bh = np.exp(ch[3][keep]) * F(biases[bias * 2 + 1]) / F(net_h)
                cands.append(np.stack([conf[keep], cx - bw * F(0.5), cy - bh * F(0.5), cx + bw * F(0.5),
                                       cy + bh * F(0.5), bw * bh, cls[keep].astype(F)], axis=1))
        allc = np.concatenate(cands) if cands else np.zeros((0, 7), F)
        allc = allc[qsort_descent(allc[:, 0])]
        picked = nms_sorted(allc[:, 1:5], float_value(p["nms_threshold"]), areas=allc[:, 5], multiply=True)
        sel = allc[picked]
        return _rows(list(sel[:, 6] + F(1)), list(sel[:, 0]), list(sel[:, 1:5]))


@register_op("YoloDetectionOutput")
class YoloDetectionOutput(Op):
    """YOLOv2: softmax the class scores, decode, one global sort, NMS across classes."""

    def run(self, *xs: np.ndarray) -> np.ndarray:
        """Detections per sample (ncnn returns its softmaxed first input when nothing is detected)."""
        return per_sample(self._one, *xs)

    def _one(self, *xs: np.ndarray) -> np.ndarray:
        p = self.p
        nb, nc = p["num_box"], p["num_class"]
        biases = float_list(self.layer, 4)
        rects, scores, labels = [], [], []
        first = None
        for b, x in enumerate(xs):
            c, h, w = x.shape
            if c // nb != 5 + nc:
                raise self.unsupported(f"input {b} with {c} channels for {nb} boxes of {nc} classes")
            x = x.copy()
            for pp in range(nb):
                ch = x[pp * (5 + nc):(pp + 1) * (5 + nc)]
                s = ch[5:]
                e = np.exp(s - s.max(axis=0))
                ch[5:] = e / e.sum(axis=0)
                cx = (np.arange(w, dtype=F)[None, :] + _sigmoid(ch[0])) / F(w)
                cy = (np.arange(h, dtype=F)[:, None] + _sigmoid(ch[1])) / F(h)
                with np.errstate(over="ignore"):
                    bw = np.exp(ch[2]) * F(biases[pp * 2]) / F(w)
                    bh = np.exp(ch[3]) * F(biases[pp * 2 + 1]) / F(h)
                cls = np.argmax(ch[5:], axis=0)
                conf = _sigmoid(ch[4]) * np.take_along_axis(ch[5:], cls[None], 0)[0]
                keep = conf >= F(float_value(p["confidence_threshold"]))
                rects.append(np.stack([(cx - bw * F(0.5))[keep], (cy - bh * F(0.5))[keep],
                                       (cx + bw * F(0.5))[keep], (cy + bh * F(0.5))[keep]], axis=1))
                scores.append(conf[keep])
                labels.append(cls[keep])
            first = x if first is None else first
        boxes, score, label = np.concatenate(rects), np.concatenate(scores), np.concatenate(labels)
        if not len(score):
            return first
        order = qsort_descent(score)
        boxes, score, label = boxes[order], score[order], label[order]
        picked = nms_sorted(boxes, float_value(p["nms_threshold"]))
        return _rows(list(label[picked] + 1), list(score[picked]), list(boxes[picked]))


def _anchors(base_size: int) -> np.ndarray:
    """Faster R-CNN's 9 anchors (ratios 0.5, 1, 2 x scales 8, 16, 32) around the base box's centre."""
    out = []
    c = F(base_size) * F(0.5)
    for ar in (0.5, 1.0, 2.0):
        r_w = int(_c_round(F(base_size) / np.sqrt(F(ar))))
        r_h = int(_c_round(F(r_w) * F(ar)))
        for scale in (8.0, 16.0, 32.0):
            rs_w, rs_h = F(r_w) * F(scale), F(r_h) * F(scale)
            out.append([c - rs_w * F(0.5), c - rs_h * F(0.5), c + rs_w * F(0.5), c + rs_h * F(0.5)])
    return np.asarray(out, F)


def _c_round(x):
    """C's round(): halves away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@register_op("Proposal")
class Proposal(Op):
    """Faster R-CNN region proposals: anchors + deltas, clip, size filter, sort, NMS."""

    def run(self, score: np.ndarray, deltas: np.ndarray, im_info: np.ndarray) -> list[np.ndarray]:
        """rois ``(count, 1, 4)`` (and scores ``(count, 1, 1)`` with a second output) per sample."""
        both = [self._one(score[n], deltas[n], im_info[n]) for n in range(score.shape[0])]
        rois = per_sample(lambda i: both[int(i)][0], np.arange(len(both)))
        if len(self.layer.outputs) == 1:
            return [rois]
        return [rois, per_sample(lambda i: both[int(i)][1], np.arange(len(both)))]

    def _one(self, score: np.ndarray, deltas: np.ndarray, im_info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        _, h, w = score.shape
        anchors = _anchors(p["base_size"])
        na = len(anchors)
        stride = p["feat_stride"]
        info = im_info.reshape(-1)
        im_w, im_h, im_scale = F(info[1]), F(info[0]), F(info[2])
        boxes, scores = [], []
        for q, a in enumerate(anchors):
            aw, ah = a[2] - a[0], a[3] - a[1]
            ax = a[0] + np.arange(w, dtype=F) * F(stride)
            ay = a[1] + np.arange(h, dtype=F) * F(stride)
            cx = (ax + aw * F(0.5))[None, :]
            cy = (ay + ah * F(0.5))[:, None]
            d = deltas[q * 4:(q + 1) * 4]
            pcx, pcy = cx + aw * d[0], cy + ah * d[1]
            with np.errstate(over="ignore"):
                pw, ph = aw * np.exp(d[2]), ah * np.exp(d[3])
            box = np.stack([pcx - pw * F(0.5), pcy - ph * F(0.5), pcx + pw * F(0.5), pcy + ph * F(0.5)], -1)
            box = box.reshape(-1, 4)
            limit = np.asarray([im_w, im_h, im_w, im_h], F) - F(1)
            box = np.maximum(np.minimum(box, limit), F(0))
            keep = ((box[:, 2] - box[:, 0] + F(1)) >= F(p["min_size"]) * im_scale) & \
                   ((box[:, 3] - box[:, 1] + F(1)) >= F(p["min_size"]) * im_scale)
            boxes.append(box[keep])
            scores.append(score[q + na].reshape(-1)[keep])
        box, s = np.concatenate(boxes), np.concatenate(scores)
        order = qsort_descent(s)
        if 0 < p["pre_nms_topN"] < len(order):
            order = order[: p["pre_nms_topN"]]
        box, s = box[order], s[order]
        picked = nms_sorted(box, float_value(p["nms_thresh"]))[: p["after_nms_topN"]]
        return box[picked].reshape(-1, 1, 4), s[picked].reshape(-1, 1, 1)
