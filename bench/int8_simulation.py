"""How well the numpy backend's int8 simulation predicts the real ncnn runtime's int8 output.

    python bench/int8_simulation.py [MODEL.param MODEL.bin] [--images N]

Default model: ncnn2int8's SqueezeNet (``ncnn-reference/squeezenet_v1.1-int8-kl``).  Runs all shared
images through both, prints the top-1 agreement, the largest difference in ``prob`` and the time of
each side (ratio numpy / runtime).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REF = SHARED / "models" / "squeezenet_v1.1" / "ncnn-reference"
IMAGES = SHARED / "images" / "imagenet-sample"


def main() -> None:
    """Run both backends and print the comparison."""
    from ncnnc.backends.ncnn_runtime import RuntimeNet
    from ncnnc.backends.numpy.interpreter import Interpreter
    from ncnnc.core.calibration import batches, input_specs, load_batch
    from ncnnc.frontends.ncnn import load

    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("model", nargs="*", default=[str(REF / "squeezenet_v1.1-int8-kl.param"),
                                                     str(REF / "squeezenet_v1.1-int8-kl.bin")])
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    graph = load(*args.model)
    paths = sorted(IMAGES.iterdir())[: args.images]
    specs = input_specs(graph, [paths], mean=[[104.0, 117.0, 123.0]], norm=[[1.0, 1.0, 1.0]], shape=[[227, 227, 3]],
                        pixel=["BGR"])
    interp, net = Interpreter(graph), RuntimeNet(*args.model)
    out = graph.outputs[0]
    sim, real, t_np, t_rt = [], [], 0.0, 0.0
    for indices in batches(specs, 16):
        batch = load_batch(specs, indices)
        t = time.perf_counter()
        sim.append(interp.run(batch, [out])[out].reshape(len(indices), -1))
        t_np += time.perf_counter() - t
        t = time.perf_counter()
        real.append(np.stack([net.run({"data": x}, [out])[out].ravel() for x in batch["data"]]))
        t_rt += time.perf_counter() - t
    s, r = np.concatenate(sim), np.concatenate(real)
    print(f"{len(s)} images: top-1 identical on {100 * np.mean(s.argmax(1) == r.argmax(1)):.1f}%, "
          f"largest |prob difference| {np.abs(s - r).max():.3g}, "
          f"numpy {t_np:.1f} s vs runtime {t_rt:.1f} s (ratio {t_np / t_rt:.1f}x)")


if __name__ == "__main__":
    main()
