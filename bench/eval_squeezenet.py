"""The full SqueezeNet int8 evaluation: compile with kl / aciq / eq, with and without automatic mixed
precision, on the first 100 shared images; evaluate each on all 500 in the real ncnn runtime.

    python bench/eval_squeezenet.py [--methods kl,aciq,eq] [--images N] [--out DIR]

Prints one row per run: top-1 / top-5 (fp32 and int8), top-1 agreement, layers kept fp32, .bin size
ratio to the fp32 .bin, and the compile time; plus ncnn's own toolchain's int8 model as reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "squeezenet_v1.1"
IMAGES = SHARED / "images" / "imagenet-sample"
PRE = {"mean": [104.0, 117.0, 123.0], "norm": [1.0, 1.0, 1.0], "shape": [227, 227, 3], "pixel": "BGR"}


def main() -> None:
    """Run every configuration and print the table."""
    import ncnnc
    from ncnnc.core.evaluate import evaluate

    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--methods", default="kl,aciq,eq")
    parser.add_argument("--images", type=int, default=500, help="evaluation images (all 500 by default)")
    parser.add_argument("--out", help="keep the compiled models here")
    args = parser.parse_args()
    images = sorted(IMAGES.iterdir())
    calib = images[:100]
    evaluation = images[: args.images]
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ncnnc-bench-"))
    fp32 = (MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin")
    fp32_bytes = fp32[1].stat().st_size
    labels = MODEL / "synset_words.txt"
    rows = []
    ref = MODEL / "ncnn-reference"
    res = evaluate(fp32, (ref / "squeezenet_v1.1-int8-kl.param", ref / "squeezenet_v1.1-int8-kl.bin"), evaluation,
                   labels=labels, **PRE)
    rows.append(("ncnn2int8 kl (reference)", res, 0, (ref / "squeezenet_v1.1-int8-kl.bin").stat().st_size, None))
    for method in args.methods.split(","):
        for amp in (False, True):
            name = f"{method}{' + auto mixed precision' if amp else ''}"
            out = out_root / name.replace(" ", "_").replace("+", "amp")
            start = time.perf_counter()
            result = ncnnc.compile(list(map(str, fp32)), calib=calib, method=method, auto_mixed_precision=amp,
                                   out_dir=out, **PRE)
            seconds = time.perf_counter() - start
            res = evaluate(fp32, (out / "model.param", out / "model.bin"), evaluation, labels=labels, **PRE)
            kept = len(result.quantize_report.kept_fp32)
            rows.append((name, res, kept, (out / "model.bin").stat().st_size, seconds))
            print(f"{name}: done in {seconds:.1f} s", flush=True)
    print(f"\nSqueezeNet v1.1, calibration: first 100 shared images, evaluation: {len(evaluation)} images, "
          f"real ncnn runtime; fp32 .bin {fp32_bytes} bytes")
    print(f"{'configuration':<30} {'fp32 top1':>9} {'int8 top1':>9} {'int8 top5':>9} {'agree':>6} "
          f"{'fp32 kept':>9} {'bin ratio':>9} {'compile s':>9}")
    for name, res, kept, size, seconds in rows:
        secs = f"{seconds:9.1f}" if seconds is not None else f"{'-':>9}"
        print(f"{name:<30} {100 * res.top1['fp32']:8.1f}% {100 * res.top1['int8']:8.1f}% "
              f"{100 * res.top5['int8']:8.1f}% {100 * res.agreement:5.1f}% {kept:9d} {size / fp32_bytes:9.3f} {secs}")
    print(f"models in {out_root}")


if __name__ == "__main__":
    main()
