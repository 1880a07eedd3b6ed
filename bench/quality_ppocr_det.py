"""Int8 quality of PP-OCRv5 mobile det (text-probability map) in the real ncnn runtime: ncnnc kl with and
without auto mixed precision, against the fp32 model, on the shared images.

The model files come from nihui/ncnn-assets (``models/PP_OCRv5_mobile_det.ncnn.param/.bin``); pass the
folder holding them.  Preprocessing as ncnn's PP-OCRv5 example: RGB, ImageNet mean/std, here resized to
``--size`` square.  Calibration on the first ``--calib`` shared images (sorted), evaluation on
``--eval`` images; per image, the cosine of the output map to fp32 and the IoU of the text masks
(probability > 0.3, PaddleOCR's binarisation threshold).

With ``--ncnn-tools DIR`` (an ncnn build's ``tools`` folder) also ncnn's own toolchain on the same
calibration images: ncnnoptimize, ncnn2table ``method=kl``, ncnn2int8 (``bench/ncnn_tools.py``).

    python bench/quality_ppocr_det.py /path/to/ncnn-assets/models [--calib 20] [--eval 500] [--amp-images 16]
        [--ncnn-tools /path/to/ncnn/build/tools]
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
MODEL = "PP_OCRv5_mobile_det.ncnn"
MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
NORM = [1 / 0.229 / 255, 1 / 0.224 / 255, 1 / 0.225 / 255]
THRESHOLD = 0.3


def maps(param: Path, binf: Path, images: list[Path], size: int) -> list[np.ndarray]:
    """The output map of each image in the real runtime."""
    net = RuntimeNet(param, binf)
    out = []
    for path in images:
        x = substract_mean_normalize(load_image(path, "RGB", (size, size)), MEAN, NORM)
        out.append(net.run({"in0": x}, ["out0"])["out0"])
    return out


def agreement(ref: list[np.ndarray], got: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-image cosine of the maps and IoU of the thresholded text masks."""
    cos, iou = [], []
    for a, b in zip(ref, got):
        a64, b64 = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
        cos.append(float(a64 @ b64 / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-30)))
        ma, mb = a > THRESHOLD, b > THRESHOLD
        union = np.logical_or(ma, mb).sum()
        iou.append(float(np.logical_and(ma, mb).sum() / union) if union else 1.0)
    return np.array(cos), np.array(iou)


def main() -> None:
    """Compile the variants, run them and fp32 on the evaluation images, print one line each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, help="folder with PP_OCRv5_mobile_det.ncnn.param/.bin")
    ap.add_argument("--calib", type=int, default=20)
    ap.add_argument("--eval", type=int, default=500)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--amp-images", type=int, default=16, help="images auto mixed precision measures on")
    ap.add_argument("--target-cos", type=float, default=0.995, help="auto mixed precision's target")
    ap.add_argument("--variants", default="kl,amp", help="which to run: kl, amp (comma-separated)")
    ap.add_argument("--ncnn-tools", type=Path, help="an ncnn build's tools folder: also ncnn2table kl + ncnn2int8")
    args = ap.parse_args()
    param, binf = args.models / f"{MODEL}.param", args.models / f"{MODEL}.bin"
    images = sorted(IMAGES.iterdir())
    calib, evaluation = images[: args.calib], images[: args.eval]
    ref = maps(param, binf, evaluation, args.size)
    print(f"PP-OCRv5 det {args.size}x{args.size}, calibration {len(calib)} images, evaluation {len(evaluation)}")
    variants = [v for v in (("ncnnc kl", False, "kl"), ("ncnnc kl --auto-mixed-precision", True, "amp"))
                if v[2] in args.variants.split(",")]
    for label, amp, _ in variants:
        with tempfile.TemporaryDirectory() as tmp:
            result = ncnnc.compile([param, binf], calib=calib, mean=MEAN, norm=NORM, shape=[args.size, args.size, 3],
                                   pixel="RGB", method="kl", auto_mixed_precision=amp, amp_images=args.amp_images,
                                   target_cos=args.target_cos, out_dir=tmp)
            got = maps(Path(tmp) / "model.param", Path(tmp) / "model.bin", evaluation, args.size)
        report = result.quantize_report
        kept, int8 = (len(report.kept_fp32), len(report.quantized)) if report else (0, 0)
        show(label, ref, got, evaluation, kept, int8)
    if args.ncnn_tools is not None:
        with tempfile.TemporaryDirectory() as tmp:
            q_param, q_bin = ncnn_int8(args.ncnn_tools, param, binf, calib, Path(tmp), mean=MEAN, norm=NORM,
                                       shape=[args.size, args.size, 3], pixel="RGB", method="kl")
            got = maps(q_param, q_bin, evaluation, args.size)
            int8 = sum(1 for line in (Path(tmp) / "ncnn.table").read_text().splitlines() if "_param_0 " in line)
        show("ncnn2table kl + ncnn2int8", ref, got, evaluation, None, int8)


def show(label: str, ref: list[np.ndarray], got: list[np.ndarray], evaluation: list[Path], kept: int | None,
         int8: int) -> None:
    """One variant's line: cosine and mask IoU to fp32, layer counts, the three worst images."""
    cos, iou = agreement(ref, got)
    counts = f"layers kept fp32 {kept}, int8 {int8}" if kept is not None else f"layers int8 {int8}"
    print(f"{label:34s} cosine worst {cos.min():.4f} median {np.median(cos):.4f} | mask IoU worst "
          f"{iou.min():.4f} mean {iou.mean():.4f} | {counts}")
    worst = np.argsort(cos)[:3]
    print("  worst images: " + ", ".join(f"{evaluation[i].name} (cosine {cos[i]:.4f}, fp32 map max "
                                         f"{float(ref[i].max()):.2g})" for i in worst))


if __name__ == "__main__":
    main()
