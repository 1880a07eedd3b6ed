"""SqueezeNet v1.1 int8 latency, one thread: ncnnc's LLVM host JIT side by side with the real ncnn
runtime (int8 and fp32) and the numpy int8 simulation, all in this one process.

    python bench/bench_llvm.py [--rounds 7] [--burst 20] [--model MODEL.param MODEL.bin]

Without ``--model`` the int8 model is compiled first (``ncnnc.compile``: kl on the first 100 shared
images).  Each contender runs short bursts of ``--burst`` forward passes on one preprocessed image,
rounds interleaved so that load on this shared machine hits every contender alike; a contender's
figure is its best round's time per image.  Ratios are against the LLVM JIT.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NCNNC_SHARED", ROOT.parent / "shared"))
MODEL = SHARED / "models" / "squeezenet_v1.1"
IMAGES = SHARED / "images" / "imagenet-sample"
PREPROCESS = {"mean": [104.0, 117.0, 123.0], "norm": [1.0, 1.0, 1.0], "shape": [227, 227, 3]}


def time_bursts(contenders: dict[str, Callable[[], object]], rounds: int, burst: int) -> dict[str, float]:
    """Best per-call seconds of each contender over interleaved rounds of ``burst`` calls."""
    best = {name: float("inf") for name in contenders}
    for fn in contenders.values():
        fn()  # warm up: page in code and weights, fill caches
    for r in range(rounds):
        names = list(contenders)
        names = names[r % len(names):] + names[: r % len(names)]
        for name in names:
            fn = contenders[name]
            start = time.perf_counter()
            for _ in range(burst):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / burst)
    return best


def main() -> None:
    """Compile (unless given a model), time every contender, print the table of ratios."""
    from ncnnc.backends.llvm.jit import jit
    from ncnnc.backends.ncnn_runtime import RuntimeNet
    from ncnnc.backends.numpy.interpreter import Interpreter
    from ncnnc.core.calibration import input_specs, load_batch
    from ncnnc.core.pipeline import compile as compile_model
    from ncnnc.frontends.ncnn import load

    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--model", nargs=2, metavar=("PARAM", "BIN"))
    args = parser.parse_args()
    images = sorted(IMAGES.iterdir())
    with tempfile.TemporaryDirectory(prefix="ncnnc-bench-") as tmp:
        if args.model:
            param, binf = Path(args.model[0]), Path(args.model[1])
        else:
            compile_model([MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin"], calib=images[:100],
                          out_dir=tmp, threads=2, **PREPROCESS)
            param, binf = Path(tmp) / "model.param", Path(tmp) / "model.bin"
        graph = load(str(param), str(binf))
        t = time.perf_counter()
        model = jit(graph, use_cache=False)
        codegen = time.perf_counter() - t
        specs = input_specs(graph, [images[100:101]], mean=[PREPROCESS["mean"]], norm=[PREPROCESS["norm"]],
                            shape=[PREPROCESS["shape"]], pixel=["BGR"])
        x = np.ascontiguousarray(load_batch(specs, [0])["data"][0])
        int8_net = RuntimeNet(param, binf, num_threads=1, exact=False)
        fp32_net = RuntimeNet(MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin", num_threads=1,
                              exact=False)
        interp = Interpreter(graph)
        contenders = {
            "ncnnc llvm JIT (host, int8)": lambda: model.run_one([x]),
            "ncnn runtime int8": lambda: int8_net.run({"data": x}, ["prob"]),
            "ncnn runtime fp32": lambda: fp32_net.run({"data": x}, ["prob"]),
            "ncnnc numpy int8 simulation": lambda: interp.run({"data": x[None]}, ["prob"]),
        }
        best = time_bursts(contenders, args.rounds, args.burst)
    target = model.target
    print(f"SqueezeNet v1.1 int8, 227x227, 1 thread; host target {target.cpu} "
          f"({target.options['int8_dot']}, {target.options['vector_bits']}-bit); codegen {codegen:.1f} s uncached")
    print(f"{'contender':<30} {'ms/image':>9} {'time / JIT time':>16}")
    ref = best["ncnnc llvm JIT (host, int8)"]
    for name, seconds in best.items():
        print(f"{name:<30} {1000 * seconds:>9.2f} {seconds / ref:>15.2f}x")


if __name__ == "__main__":
    main()
