"""Time the numpy backend against the real ncnn runtime on SqueezeNet v1.1 fp32, one thread.

Usage: python bench/bench_numpy.py [--repeat 5]
Prints images/second of each and the time ratio numpy / ncnn for batch 1 and batch 32.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread for numpy's BLAS, as for ncnn (set before numpy loads)

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ncnnc.backends.ncnn_runtime import RuntimeNet  # noqa: E402
from ncnnc.backends.numpy import Interpreter  # noqa: E402
from ncnnc.frontends.ncnn import load  # noqa: E402

MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "squeezenet_v1.1"


def best_of(fn, repeat: int) -> float:
    """Fastest wall time of ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    param, binf = MODEL / "squeezenet_v1.1.param", MODEL / "squeezenet_v1.1.bin"
    interp = Interpreter(load(param, binf))
    net = RuntimeNet(param, binf, num_threads=1)
    rng = np.random.default_rng(0)
    print("SqueezeNet v1.1 fp32, 227x227, 1 thread")
    print(f"{'batch':>5}  {'numpy img/s':>12}  {'ncnn img/s':>11}  {'numpy time / ncnn time':>21}")
    for batch in (1, 32):
        x = rng.uniform(-120, 150, (batch, 3, 227, 227)).astype(np.float32)
        t_np = best_of(lambda x=x: interp.run({"data": x}, ["prob"]), args.repeat)
        t_nc = best_of(lambda x=x: [net.run({"data": xi}, ["prob"]) for xi in x], args.repeat)
        print(f"{batch:>5}  {batch / t_np:>12.1f}  {batch / t_nc:>11.1f}  {t_np / t_nc:>21.2f}x")


if __name__ == "__main__":
    main()
