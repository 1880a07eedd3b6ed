"""Time ``kl`` calibration of the -opt SqueezeNet on the first 100 shared images against the real
ncnn runtime running just the fp32 forward passes of the same 100 images, in the same run.

    python bench/bench_calibration.py [--images 100] [--threads 1] [--method kl] [--ncnn2table PATH] [--rounds 3]

Prints both times and their ratio (the aim: calibration <= 1.5x the forward passes).  ncnn gets
already preprocessed tensors and one thread (ncnn2table's own setting per image); ``--threads``
sets the calibration's worker processes.  The calibration time covers the whole ``ncnnc.calibrate``
call (model loading, decoding, preprocessing, the passes, the KL searches); the one-time discovery
of ncnnc's plugins (importing every built-in plugin) happens before the clock starts, as
ncnn's net loading does, and is printed on its own.

Then the two commands side by side, start-up included: ``ncnnc table`` against ncnn's own
``ncnn2table`` on the -opt32 model (what ncnn2table's reference tables were made from), the same
images and the same ``thread=``, each a fresh process, interleaved, best of ``--rounds``.
``ncnn2table`` is taken from ``--ncnn2table``, ``$NCNN2TABLE`` or the ``PATH``; without it the
figure quoted in issue 14 is printed with its provenance.  ncnnc's modules are byte-compiled first,
as ``pip install`` does (an editable install run with ``PYTHONDONTWRITEBYTECODE`` set, as on this
project's machines, would otherwise compile every module on every start).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "squeezenet_v1.1" / "squeezenet_v1.1-opt"
IMAGES = SHARED / "images" / "imagenet-sample"
OPT32 = SHARED / "models" / "squeezenet_v1.1" / "ncnn-reference" / "squeezenet_v1.1-opt32"
MEAN, NORM, SHAPE = [104.0, 117.0, 123.0], [1.0, 1.0, 1.0], [227, 227, 3]
QUOTED_NCNN2TABLE = ("1.3 s for kl, thread=2, 100 images, -opt32 (quoted from issue 14, measured on this "
                     "project's machine with ncnn2table built from Tencent/ncnn a4d2ea1; no binary found here)")


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
    """Seconds the first use of every kind of ncnnc's plugins takes (imports of every built-in plugin;
    a command pays only for the kinds it uses)."""
    from ncnnc.core.registry import KINDS, registry

    start = time.perf_counter()
    for kind in KINDS:
        registry().all(kind)
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


def command_seconds(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, its child processes included) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr.strip()[-500:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compile_bytecode() -> None:
    """Byte-compile ncnnc's modules where they are imported from, as ``pip install`` does."""
    import compileall

    import ncnnc

    folders = {Path(ncnnc.__file__).resolve().parent, *(Path(p).resolve() for p in getattr(ncnnc, "__path__", []))}
    for sub in ("core", "backends", "frontends", "plugins"):
        module = __import__(f"ncnnc.{sub}", fromlist=["_"])
        folders.add(Path(module.__file__).resolve().parent)
    for folder in sorted(folders):
        compileall.compile_dir(str(folder), quiet=1)


def commands_side_by_side(paths: list[Path], threads: int, method: str, ncnn2table: str | None,
                          rounds: int) -> None:
    """``ncnnc table`` and ``ncnn2table`` on the same images, interleaved; best of ``rounds`` each."""
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "images.txt"
        lst.write_text("".join(f"{p}\n" for p in paths))

        def args(out: str) -> list[str]:
            return [f"{OPT32}.param", f"{OPT32}.bin", str(lst), str(Path(tmp) / out), "mean=[104,117,123]",
                    "norm=[1,1,1]", "shape=[227,227,3]", "pixel=BGR", f"thread={threads}", f"method={method}"]

        ours = [sys.executable, "-m", "ncnnc", "table", *args("ncnnc.table")]
        theirs = [ncnn2table, *args("ncnn2table.table")] if ncnn2table else None
        inf = (float("inf"), float("inf"))
        best_ours, best_theirs = inf, inf
        for _ in range(rounds):
            best_ours = min(best_ours, command_seconds(ours))
            if theirs:
                best_theirs = min(best_theirs, command_seconds(theirs))
    print(f"ncnnc table method={method} thread={threads}, {len(paths)} images, start-up included "
          f"(best of {rounds}): {best_ours[0]:.2f} s wall, {best_ours[1]:.2f} s CPU")
    if theirs:
        print(f"ncnn2table, the same arguments (best of {rounds}, interleaved): {best_theirs[0]:.2f} s wall, "
              f"{best_theirs[1]:.2f} s CPU")
        print(f"ratio ncnnc table / ncnn2table: {best_ours[0] / best_theirs[0]:.2f}x wall (aim <= 1.0x), "
              f"{best_ours[1] / best_theirs[1]:.2f}x CPU")
    else:
        print(f"ncnn2table: {QUOTED_NCNN2TABLE}")


def main() -> None:
    """Run both, print the times and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--method", default="kl")
    parser.add_argument("--ncnn2table", default=os.environ.get("NCNN2TABLE") or shutil.which("ncnn2table"),
                        help="ncnn's ncnn2table binary (default: $NCNN2TABLE, else the PATH)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the command comparison")
    args = parser.parse_args()
    paths = sorted(IMAGES.iterdir())[:args.images]
    forward = ncnn_forward_seconds(paths, 1)
    discovery = plugin_discovery_seconds()
    calib = calibration_seconds(paths, args.threads, args.method)
    print(f"ncnn runtime, fp32 forward passes of {len(paths)} images (1 thread): {forward:.2f} s")
    print(f"ncnnc plugin discovery, once per process (not counted): {discovery:.2f} s")
    print(f"ncnnc calibrate method={args.method} on the same images ({args.threads} process(es)): {calib:.2f} s")
    print(f"ratio calibration / forward: {calib / forward:.2f}x (aim <= 1.5x)")
    compile_bytecode()
    commands_side_by_side(paths, args.threads, args.method, args.ncnn2table, args.rounds)


if __name__ == "__main__":
    main()
