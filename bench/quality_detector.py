"""Int8 quality of a detector, NanoDet-m (COCO, 320x320), in the real ncnn runtime: box mAP@0.5 of the int8
model's detections against the fp32 model's, for ncnnc kl with and without auto mixed precision.

The model files come from nihui/ncnn-assets (``models/nanodet_m.param/.bin``); pass the folder holding
them.  Preprocessing and decoding as ncnn's ``examples/nanodet.cpp``: BGR, mean/std of ImageNet, three
strides (8, 16, 32) of 80 sigmoid class scores and 4 x 8 distance bins (softmax, expectation), per-class
NMS at IoU 0.5.  The fp32 boxes scoring over 0.4 are the ground truth of each image; the int8 boxes
scoring over 0.05 are ranked by score into a VOC all-point AP per class, averaged over the classes.

With ``--ncnn-tools DIR`` (an ncnn build's ``tools`` folder) also ncnn's own toolchain on the same
calibration images: ncnnoptimize, ncnn2table ``method=kl``, ncnn2int8 (``bench/ncnn_tools.py``).

    python bench/quality_detector.py /path/to/ncnn-assets/models [--calib 20] [--eval 500] [--ncnn-tools DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from ncnn_tools import ncnn_int8

import ncnnc
from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.core.preprocess import load_image, substract_mean_normalize

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images" / "imagenet-sample"
MODEL = "nanodet_m"
SIZE = 320
MEAN = [103.53, 116.28, 123.675]
NORM = [0.017429, 0.017507, 0.017125]
HEADS = ((8, "792", "795"), (16, "814", "817"), (32, "836", "839"))
GT_SCORE, PRED_SCORE, NMS_IOU, MATCH_IOU = 0.4, 0.05, 0.5, 0.5


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of ``boxes``."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area - inter, 1e-9)


def decode(outputs: dict[str, np.ndarray], threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, scores, labels after per-class NMS."""
    boxes, scores, labels = [], [], []
    for stride, cls_name, reg_name in HEADS:
        cls, reg = outputs[cls_name], outputs[reg_name]
        side = SIZE // stride
        label = cls.argmax(1)
        score = cls.max(1)
        keep = np.nonzero(score > threshold)[0]
        bins = reg[keep].reshape(-1, 4, 8)
        e = np.exp(bins - bins.max(2, keepdims=True))
        dist = (e / e.sum(2, keepdims=True) * np.arange(8)).sum(2) * stride
        cx, cy = (keep % side + 0.5) * stride, (keep // side + 0.5) * stride
        boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1))
        scores.append(score[keep])
        labels.append(label[keep])
    boxes, scores, labels = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
    kept = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        while len(idx):
            kept.append(idx[0])
            idx = idx[1:][iou(boxes[idx[0]], boxes[idx[1:]]) <= NMS_IOU]
    kept = np.asarray(kept, dtype=np.int64)
    return boxes[kept], scores[kept], labels[kept]


def detections(param: Path, binf: Path, images: list[Path], threshold: float) -> list[tuple]:
    """Decoded detections of each image in the real runtime."""
    net = RuntimeNet(param, binf)
    names = [n for _, c, r in HEADS for n in (c, r)]
    return [decode(net.run({"input.1": substract_mean_normalize(load_image(p, "BGR", (SIZE, SIZE)), MEAN, NORM)},
                           names), threshold) for p in images]


def box_map(truth: list[tuple], found: list[tuple]) -> float:
    """VOC all-point AP at IoU 0.5 per class (the truth's classes), averaged."""
    aps = []
    for c in sorted({int(x) for _, _, labels in truth for x in labels}):
        gts = [b[lab == c] for b, _, lab in truth]
        total = sum(len(g) for g in gts)
        preds = [(s, i, b) for i, (boxes, scores, lab) in enumerate(found)
                 for b, s in zip(boxes[lab == c], scores[lab == c])]
        preds.sort(key=lambda t: -t[0])
        used = [np.zeros(len(g), bool) for g in gts]
        tp = np.zeros(len(preds))
        for k, (_, i, b) in enumerate(preds):
            if len(gts[i]):
                o = iou(b, gts[i])
                j = int(o.argmax())
                if o[j] >= MATCH_IOU and not used[i][j]:
                    used[i][j] = True
                    tp[k] = 1
        if total == 0:
            continue
        recall = np.concatenate([[0], np.cumsum(tp) / total, [1]])
        precision = np.concatenate([[1], np.cumsum(tp) / np.arange(1, len(tp) + 1), [0]])
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        aps.append(float(np.sum((recall[1:] - recall[:-1]) * precision[1:])))
    return float(np.mean(aps)) if aps else 1.0


def main() -> None:
    """Compile the variants, decode fp32 and int8 detections on the evaluation images, print mAP."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, help="folder with nanodet_m.param/.bin")
    ap.add_argument("--calib", type=int, default=20)
    ap.add_argument("--eval", type=int, default=500)
    ap.add_argument("--ncnn-tools", type=Path, help="an ncnn build's tools folder: also ncnn2table kl + ncnn2int8")
    args = ap.parse_args()
    param, binf = args.models / f"{MODEL}.param", args.models / f"{MODEL}.bin"
    images = sorted(IMAGES.iterdir())
    calib, evaluation = images[: args.calib], images[: args.eval]
    truth = detections(param, binf, evaluation, GT_SCORE)
    print(f"NanoDet-m {SIZE}x{SIZE}: {sum(len(t[0]) for t in truth)} fp32 boxes on {len(evaluation)} images, "
          f"calibration {len(calib)} images")
    for label, amp in (("ncnnc kl", False), ("ncnnc kl --auto-mixed-precision", True)):
        with tempfile.TemporaryDirectory() as tmp:
            result = ncnnc.compile([param, binf], calib=calib, mean=MEAN, norm=NORM, shape=[SIZE, SIZE, 3],
                                   pixel="BGR", method="kl", auto_mixed_precision=amp, out_dir=tmp)
            found = detections(Path(tmp) / "model.param", Path(tmp) / "model.bin", evaluation, PRED_SCORE)
        report = result.quantize_report
        kept, int8 = (len(report.kept_fp32), len(report.quantized)) if report else (0, 0)
        print(f"{label:34s} box mAP@0.5 vs fp32 {box_map(truth, found):.4f} | layers kept fp32 {kept}, int8 {int8}")
    if args.ncnn_tools is not None:
        with tempfile.TemporaryDirectory() as tmp:
            q_param, q_bin = ncnn_int8(args.ncnn_tools, param, binf, calib, Path(tmp), mean=MEAN, norm=NORM,
                                       shape=[SIZE, SIZE, 3], pixel="BGR", method="kl")
            found = detections(q_param, q_bin, evaluation, PRED_SCORE)
            int8 = sum(1 for line in (Path(tmp) / "ncnn.table").read_text().splitlines() if "_param_0 " in line)
        print(f"{'ncnn2table kl + ncnn2int8':34s} box mAP@0.5 vs fp32 {box_map(truth, found):.4f} | layers int8 {int8}")


if __name__ == "__main__":
    main()
