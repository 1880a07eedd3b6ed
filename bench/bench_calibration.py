"""Time ``kl`` calibration of the -opt SqueezeNet on the first 100 shared images against the real
ncnn runtime running just the fp32 forward passes of the same 100 images, in the same run.

    python bench/bench_calibration.py [--images 100] [--threads 1] [--method kl]

Prints both times and their ratio (the aim: calibration <= 1.5x the forward passes).  ncnn gets
already preprocessed tensors and one thread (ncnn2table's own setting per image); ``--threads``
sets the calibration's worker processes.  The calibration time covers the whole ``ncnnc.calibrate``
call (model loading, decoding, preprocessing, the passes, the KL searches); the one-time discovery
of ncnnc's plugins (importing every frontend, onnx included) happens before the clock starts, as
ncnn's net loading does, and is printed on its own.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "squeezenet_v1.1" / "squeezenet_v1.1-opt"
IMAGES = SHARED / "images" / "imagenet-sample"
MEAN, NORM, SHAPE = [104.0, 117.0, 123.0], [1.0, 1.0, 1.0], [227, 227, 3]


def ncnn_forward_seconds(paths: list[Path], threads: int) -> float:
    """Seconds the real ncnn runtime (exact fp32) takes for the forward passes alone."""
    from ncnnc.backends.ncnn_runtime import RuntimeNet
    from ncnnc.core.preprocess import load_image, substract_mean_normalize

    net = RuntimeNet(f"{MODEL}.param", f"{MODEL}.bin", num_threads=threads)
    tensors = [substract_mean_normalize(load_image(p, "BGR", SHAPE), MEAN, NORM) for p in paths]
    net.run({"data": tensors[0]}, ["prob"])  # warm up
    start = time.perf_counter()
    for x in tensors:
        net.run({"data": x}, ["prob"])
    return time.perf_counter() - start


def plugin_discovery_seconds() -> float:
    """Seconds the first use of ncnnc's plugin registry takes (imports of every built-in plugin)."""
    from ncnnc.core.registry import registry

    start = time.perf_counter()
    registry()
    return time.perf_counter() - start


def calibration_seconds(paths: list[Path], threads: int, method: str) -> float:
    """Seconds ``ncnnc.calibrate`` takes, images decoded and preprocessed included."""
    import ncnnc

    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "images.txt"
        lst.write_text("".join(f"{p}\n" for p in paths))
        start = time.perf_counter()
        ncnnc.calibrate(f"{MODEL}.param", f"{MODEL}.bin", lst, Path(tmp) / "out.table", mean=MEAN, norm=NORM,
                        shape=SHAPE, pixel="BGR", method=method, threads=threads)
        return time.perf_counter() - start


def main() -> None:
    """Run both, print the times and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--method", default="kl")
    args = parser.parse_args()
    paths = sorted(IMAGES.iterdir())[:args.images]
    forward = ncnn_forward_seconds(paths, 1)
    discovery = plugin_discovery_seconds()
    calib = calibration_seconds(paths, args.threads, args.method)
    print(f"ncnn runtime, fp32 forward passes of {len(paths)} images (1 thread): {forward:.2f} s")
    print(f"ncnnc plugin discovery, once per process (not counted): {discovery:.2f} s")
    print(f"ncnnc calibrate method={args.method} on the same images ({args.threads} process(es)): {calib:.2f} s")
    print(f"ratio calibration / forward: {calib / forward:.2f}x (aim <= 1.5x)")


if __name__ == "__main__":
    main()
