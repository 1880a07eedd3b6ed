"""The int8 simulation against the real runtime on the asset models (random weights), layer by layer.

    python bench/int8_assets.py [NAME ...] [--size 320] [--images 8] [--exact-input] [--out DIR]

Each single-input model of ``tests/data/ncnn_assets`` gets random weights, is compiled to int8 (kl on the
first shared images; the Input's own size, else ``--size`` square) and runs once in the ncnn runtime and
in the numpy simulation on the same random input.  Printed per model: the largest output difference
relative to the output's range, and the first layer whose output differs by more than 1e-4 of its range,
with its cause: "input tie" (an int8 layer whose float input differs by float32 rounding, from an earlier
float layer's ``exp`` or summation order, and lands across an int8 rounding tie), "float layer" (a layer
without int8 arithmetic: its own float32 rounding, or two near-equal detection scores in swapped order),
"int8, its fused sigmoid / mish" (the runtime's vectorised ``exp`` / ``log`` / ``tanh`` differ from the C
library's in the last bit, and a requantized value crosses a rounding tie), or "int8 arithmetic" (an int8
layer whose int8 input is the same: what this script looks for).  Compiled models are kept in ``--out`` and
reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "tests" / "data" / "ncnn_assets"
IMAGES = ROOT.parent / "shared" / "images" / "imagenet-sample"
TRANSCENDENTAL = {4: "sigmoid", 5: "mish"}
"""Fused activation types the runtime computes with its own vectorised ``exp`` / ``log`` / ``tanh``."""


def compile_asset(name: str, folder: Path, size: int, images: list[Path], exact_input: bool = False) -> Path:
    """The asset ``name`` with random weights, compiled to int8 in ``folder``; returns the int8 .param."""
    import ncnnc
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.random_weights import fill_missing_weights
    from ncnnc.frontends.ncnn import load

    out = folder / "int8" / "model.param"
    if out.exists():
        return out
    graph = load(ASSETS / f"{name}.param")
    fill_missing_weights(graph, seed=2)
    folder.mkdir(parents=True, exist_ok=True)
    save(graph, folder / "model.param", folder / "model.bin")
    h, w = input_size(graph, size)
    ncnnc.compile([folder / "model.param", folder / "model.bin"], calib=images, mean=[127.5] * 3,
                  norm=[1 / 128] * 3, shape=[w, h, 3], exact_input=exact_input, out_dir=folder / "int8")
    return out


def input_size(graph, size: int) -> tuple[int, int]:
    """The Input layer's ``(h, w)``, or ``size`` square when it has none."""
    layer = next(layer for layer in graph.layers if layer.type == "Input")
    w, h = layer.p("w"), layer.p("h")
    return (h, w) if w > 0 and h > 0 else (size, size)


def first_difference(graph, ours: dict, theirs: dict) -> str:
    """The first layer whose output differs by more than 1e-4 of its range, and why."""
    from ncnnc.backends.numpy.registry import INT8, select_variant
    from ncnnc.core.int8 import float2int8

    for layer in graph.layers:
        if layer.type == "Input" or not layer.outputs:
            continue
        blob = layer.outputs[0]
        a, t = np.asarray(ours[blob][0], np.float32), theirs[blob]
        if a.size != t.size or not t.size:
            continue
        a = a.reshape(t.shape)
        limit = 1e-4 * max(1.0, float(np.abs(t).max()))
        count = int((np.abs(a - t) > limit).sum())
        if not count:
            continue
        cause = "int8 arithmetic" if select_variant(layer) == INT8 else "float layer"
        if cause == "int8 arithmetic" and layer.p("activation_type") in TRANSCENDENTAL:
            cause = f"int8, its fused {TRANSCENDENTAL[layer.p('activation_type')]}"
        if "bottom_int8_scales" in layer.weights and ours[layer.inputs[0]].dtype != np.int8:
            scale = np.float32(layer.weight("bottom_int8_scales").ravel()[0])
            x_ours = np.asarray(ours[layer.inputs[0]][0], np.float32).reshape(theirs[layer.inputs[0]].shape)
            if np.any(float2int8(x_ours * scale) != float2int8(theirs[layer.inputs[0]] * scale)):
                cause = "input tie"
        return f"{layer.type} {layer.name}: {count} of {t.size} values ({cause})"
    return "none"


def check(name: str, out: Path, size: int, images: list[Path], exact_input: bool = False) -> str:
    """One model's line."""
    from ncnnc.backends.ncnn_runtime import RuntimeNet
    from ncnnc.backends.numpy import Interpreter
    from ncnnc.core.errors import NcnncError
    from ncnnc.frontends.ncnn import load

    start = time.perf_counter()
    try:
        if len(load(ASSETS / f"{name}.param").inputs) != 1:
            return f"{name}: skipped (more than one input)"
        param = compile_asset(name, out / name, size, images, exact_input)
    except NcnncError as e:
        return f"{name}: not compiled: {e}"
    graph = load(param, param.with_suffix(".bin"))
    h, w = input_size(graph, size)
    x = np.random.default_rng(0).uniform(-1, 1, (3, h, w)).astype(np.float32)
    blobs = [b for layer in graph.layers if layer.type != "Input" for b in layer.outputs]
    theirs = RuntimeNet(param, param.with_suffix(".bin")).run({graph.inputs[0]: x}, blobs)
    ours = Interpreter(graph).run({graph.inputs[0]: x[None]}, blobs)
    theirs[graph.inputs[0]], ours[graph.inputs[0]] = x, x[None]
    worst = 0.0
    for blob in graph.outputs:
        a, t = np.asarray(ours[blob][0], np.float32), theirs[blob]
        if a.size == t.size and t.size:
            worst = max(worst, float(np.abs(a.reshape(t.shape) - t).max() / max(np.abs(t).max(), 1e-30)))
    return (f"{name}: output {worst:.1e} of its range; first difference: {first_difference(graph, ours, theirs)}"
            f" ({time.perf_counter() - start:.0f} s)")


def main() -> None:
    """Check the named asset models (default: all)."""
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("names", nargs="*", help="asset names (default: every .param in tests/data/ncnn_assets)")
    parser.add_argument("--size", type=int, default=320, help="input size where the Input has none")
    parser.add_argument("--images", type=int, default=8, help="calibration images")
    parser.add_argument("--exact-input", action="store_true", help="compile with --exact-input")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ncnnc-int8-assets"), help="compiled models")
    args = parser.parse_args()
    names = args.names or sorted(p.name[: -len(".param")] for p in ASSETS.glob("*.param"))
    images = sorted(IMAGES.iterdir())[: args.images]
    for name in names:
        print(check(name, args.out, args.size, images, args.exact_input), flush=True)


if __name__ == "__main__":
    main()
