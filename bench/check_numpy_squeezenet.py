"""Full accuracy check of the numpy backend: SqueezeNet v1.1 fp32 on all 500 shared images against the
real ncnn runtime (same preprocessing), reporting top-1 agreement (ties excepted) and the largest
probability difference.

Usage: python bench/check_numpy_squeezenet.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.numpy import Interpreter
from ncnnc.core.preprocess import load_image, substract_mean_normalize
from ncnnc.frontends.ncnn import load

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = SHARED / "models" / "squeezenet_v1.1"
IMAGES = SHARED / "images" / "imagenet-sample"


def main() -> None:
    """Run every image through both and print the summary."""
    param, binf = MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin"
    interp, net = Interpreter(load(param, binf)), RuntimeNet(param, binf, num_threads=1)
    paths = sorted(IMAGES.iterdir())
    agree = ties = 0
    max_diff = 0.0
    for start in range(0, len(paths), 32):
        chunk = paths[start:start + 32]
        batch = np.stack([substract_mean_normalize(load_image(p, "BGR", (227, 227)), [104, 117, 123])
                          for p in chunk])
        ours = interp.run({"data": batch}, ["prob"])["prob"].reshape(len(chunk), -1)
        for i, path in enumerate(chunk):
            ref = net.run({"data": batch[i]}, ["prob"])["prob"].reshape(-1)
            max_diff = max(max_diff, float(np.abs(ours[i] - ref).max()))
            top2 = np.sort(ref)[-2:]
            if top2[1] - top2[0] < 1e-6:
                ties += 1
            elif ours[i].argmax() == ref.argmax():
                agree += 1
            else:
                print(f"disagree: {path.name}")
    print(f"{len(paths)} images: top-1 identical on {agree}/{len(paths) - ties} (ties excepted: {ties}); "
          f"largest prob difference {max_diff:.3g}")


if __name__ == "__main__":
    main()
