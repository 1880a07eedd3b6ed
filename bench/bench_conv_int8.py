"""GMAC/s of the LLVM backend's int8 general convolution kernels per target, one thread.

    python bench/bench_conv_int8.py [--targets x86-64-v3 x86-64-v4-vnni] [--rounds 7] [--burst 10]

Each layer is a one-convolution graph (input quantization and the float epilogue included, as in a
model); every target runs the layer with its own int8 strategy and with the generic kernel
(``int8_dot="generic"``), rounds interleaved; a figure is the best round's time per call.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

LAYERS = [("56x56x64->64 3x3", 64, 56, 56, 64, 3), ("28x28x128->128 3x3", 128, 28, 28, 128, 3),
          ("14x14x256->256 3x3", 256, 14, 14, 256, 3), ("56x56x64->64 1x1", 64, 56, 56, 64, 1)]


def conv_graph(c: int, h: int, w: int, n: int, k: int, seed: int = 0):
    """One int8 Convolution (pad k//2, ReLU, bias, float output)."""
    from ncnnc.core.builder import GraphBuilder
    from ncnnc.core.ir import Weight

    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    src = b.input("data", (c, h, w))
    size = n * c * k * k
    b.layer("Convolution", [src], {"num_output": n, "kernel_w": k, "pad_left": k // 2, "bias_term": 1,
                                   "weight_data_size": size, "activation_type": 1, "int8_scale_term": 2},
            {"weight": Weight(rng.integers(-127, 128, size).astype(np.int8), "int8"),
             "weight_int8_scales": Weight(rng.uniform(50, 200, n).astype(np.float32), "raw"),
             "bottom_int8_scales": Weight(np.array([40.0], np.float32), "raw"),
             "bias": rng.normal(0, 1, n).astype(np.float32)}, name="out")
    return b.build(), rng.normal(0, 1, (c, h, w)).astype(np.float32)


def main() -> None:
    """Time every layer on every target (own strategy and generic) and print GMAC/s."""
    from ncnnc.backends.llvm.jit import jit
    from ncnnc.backends.llvm.targets import is_native, resolve

    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--targets", nargs="+", default=["x86-64-v3", "x86-64-v4-vnni"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()
    for name, c, h, w, n, k in LAYERS:
        graph, x = conv_graph(c, h, w, n, k)
        macs = n * c * k * k * h * w
        models = {}
        for tname in args.targets:
            target = resolve(tname)
            if not is_native(target):
                print(f"{tname}: not runnable here")
                continue
            generic = replace(target, name=f"{tname}-generic", options={**target.options, "int8_dot": "generic"})
            for label, t in ((f"{tname} ({target.options['int8_dot']})", target), (f"{tname} (generic)", generic)):
                start = time.perf_counter()
                models[label] = jit(graph, t, use_cache=False)
                models[label].codegen = time.perf_counter() - start
        ref = next(iter(models.values()))(x)["out"]
        best = {label: float("inf") for label in models}
        for _ in range(args.rounds):
            for label, model in models.items():
                start = time.perf_counter()
                for _i in range(args.burst):
                    model.run_one([x])
                best[label] = min(best[label], (time.perf_counter() - start) / args.burst)
        print(f"{name}: {macs / 1e6:.0f} MMAC")
        for label, model in models.items():
            same = np.array_equal(model(x)["out"], ref)
            print(f"  {label:<34} {1000 * best[label]:8.3f} ms {macs / best[label] / 1e9:7.1f} GMAC/s"
                  f"  codegen {model.codegen:.2f} s{'' if same else '  MISMATCH'}")


if __name__ == "__main__":
    main()
