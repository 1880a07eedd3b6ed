"""Optimize the shared SqueezeNet: time taken, and top-1 on the shared images in the real ncnn runtime.

    python bench/optimize_squeezenet.py [--images N]

Prints the optimizer's time (median of 20 runs, load and save excluded), then top-1 of the plain
model, of ncnnc's fp32 and fp16 outputs and of ncnnoptimize's shipped -opt model, and how many
predictions differ from the plain model's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import save
from ncnnc.core.optimize import optimize
from ncnnc.frontends.ncnn import load

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "squeezenet_v1.1"
IMAGES = SHARED / "images" / "imagenet-sample"


def preprocess(path: Path) -> np.ndarray:
    """BGR, ncnn's bilinear resize to 227x227, mean [104, 117, 123] subtracted."""
    import ncnn
    from PIL import Image

    bgr = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1])
    mat = ncnn.Mat.from_pixels_resize(bgr, ncnn.Mat.PixelType.PIXEL_BGR, bgr.shape[1], bgr.shape[0], 227, 227)
    mat.substract_mean_normalize([104.0, 117.0, 123.0], [])
    return np.array(mat, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()

    times = []
    for _ in range(20):
        graph = load(MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin")
        t0 = time.perf_counter()
        optimize(graph, storage=65536)
        times.append(time.perf_counter() - t0)
    print(f"optimize SqueezeNet v1.1: median {statistics.median(times) * 1000:.1f} ms "
          f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}) over {len(times)} runs")

    classes = [line.split()[0] for line in (MODEL / "synset_words.txt").read_text().splitlines()]
    paths = sorted(IMAGES.iterdir())[:args.images]
    with tempfile.TemporaryDirectory() as tmp:
        nets = {"plain": RuntimeNet(MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin"),
                "ncnnoptimize -opt": RuntimeNet(MODEL / "squeezenet_v1.1-opt.param", MODEL / "squeezenet_v1.1-opt.bin")}
        for flag in (0, 65536):
            graph = load(MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin")
            optimize(graph, storage=flag)
            save(graph, Path(tmp) / f"{flag}.param", Path(tmp) / f"{flag}.bin")
            nets[f"ncnnc {flag}"] = RuntimeNet(Path(tmp) / f"{flag}.param", Path(tmp) / f"{flag}.bin")
        predictions: dict[str, list[int]] = {name: [] for name in nets}
        for path in paths:
            x = {"data": preprocess(path)}
            for name, net in nets.items():
                predictions[name].append(int(net.run(x, ["prob"])["prob"].argmax()))
    truth = [classes.index(p.name.split("_")[0]) for p in paths]
    for name, pred in predictions.items():
        top1 = np.mean([p == t for p, t in zip(pred, truth)])
        changed = sum(p != q for p, q in zip(pred, predictions["plain"]))
        print(f"{name:20s} top-1 {top1 * 100:.1f} % on {len(paths)} images, {changed} prediction(s) differ from plain")


if __name__ == "__main__":
    main()
