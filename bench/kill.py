"""Kill tests: ``python bench/kill.py --runs 20`` sends SIGINT and SIGKILL at random points of a real ``ncnnc compile``.

Each run starts the installed ``ncnnc`` command (interpreter start-up included) compiling the shared
SqueezeNet with a few small calibration images into a fresh folder, and kills it after a delay drawn
uniformly from zero to 1.2 times an unkilled run's duration.  Checked after each kill:

- no output under a final name unless all are there and complete (the ncnn runtime loads the model,
  the table parses);
- after SIGINT: exit status 130 (or 0 if it finished first), one line on stderr, no traceback, and
  no temporary file left;
- after either signal, the next ncnnc run writing into that folder leaves no temporary file.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NCNNC_SHARED", ROOT.parent / "shared"))
MODEL = SHARED / "models" / "squeezenet_v1.1"
OUTPUTS = ("model.param", "model.bin", "model.table")


@dataclass
class KillResult:
    """One killed compile: when, what was left, and the verdict."""

    signal: str
    delay: float
    status: int | None
    outputs: str
    """``none``, ``all`` (complete) or ``partial``/``broken`` (a failure)."""
    temps_after_kill: int
    temps_after_next_run: int
    stderr: str
    ok: bool


def compile_argv(calib: Path, out: Path) -> list[str]:
    """The compile that is killed: the shared SqueezeNet, int8, small images."""
    return ["ncnnc", "compile", str(MODEL / "squeezenet_v1.1.param"), str(MODEL / "squeezenet_v1.1.bin"), "--int8",
            "--calib", str(calib), "mean=[104,117,123]", "norm=[1,1,1]", "shape=[64,64,3]", "pixel=BGR",
            "method=kl", "thread=1", "-o", str(out)]


def make_images(folder: Path, count: int = 8) -> Path:
    """A list of ``count`` shared images shrunk to 96 px (real data, quick to calibrate on)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, path in enumerate(sorted((SHARED / "images" / "imagenet-sample").iterdir())[:count]):
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((96, 96))
            im.save(folder / f"{i}.jpg")
        names.append(str(folder / f"{i}.jpg"))
    (folder / "list.txt").write_text("\n".join(names) + "\n")
    return folder / "list.txt"


def temporaries(folder: Path) -> list[Path]:
    """ncnnc's temporary files (and journals) in ``folder``."""
    return [p for p in folder.iterdir() if ".ncnnc-" in p.name] if folder.is_dir() else []


def outputs_state(out: Path) -> str:
    """``none``, ``all`` (every output there and the model loads in ncnn), ``partial`` or ``broken``."""
    present = [name for name in OUTPUTS if (out / name).exists()]
    if not present:
        return "none"
    if len(present) != len(OUTPUTS):
        return "partial"
    import ncnn

    from ncnnc.core.table import CalibrationTable

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    loads = net.load_param(str(out / "model.param")) == 0 and net.load_model(str(out / "model.bin")) == 0
    try:
        CalibrationTable.load(out / "model.table")
    except Exception:  # any failure to read the table back means a broken output
        loads = False
    return "all" if loads else "broken"


def next_run(out: Path) -> None:
    """Another ncnnc command writing into ``out`` (in-process): it must clear what a killed run left."""
    from ncnnc.core.cli import main

    status = main(["optimize", str(MODEL / "squeezenet_v1.1.param"), str(MODEL / "squeezenet_v1.1.bin"),
                   str(out / "next.param"), str(out / "next.bin")])
    assert status == 0, "the next run failed"
    (out / "next.param").unlink()
    (out / "next.bin").unlink()


def timed_run(calib: Path, workdir: Path) -> float:
    """Seconds an unkilled compile takes here (the range the kill points are drawn from)."""
    out = workdir / "unkilled"
    start = time.monotonic()
    subprocess.run(compile_argv(calib, out), check=True, capture_output=True)
    seconds = time.monotonic() - start
    shutil.rmtree(out)
    return seconds


def kill_once(sig: signal.Signals, delay: float, calib: Path, out: Path) -> KillResult:
    """Start a compile into ``out``, send ``sig`` after ``delay`` seconds, and judge what is left."""
    proc = subprocess.Popen(compile_argv(calib, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        return KillResult(sig.name, delay, None, "?", -1, -1, "hang after the signal", False)
    state = outputs_state(out)
    after_kill = len(temporaries(out))
    if out.is_dir():
        next_run(out)
    after_next = len(temporaries(out))
    ok = state in ("none", "all") and after_next == 0
    if sig == signal.SIGINT:
        lines = [line for line in stderr.splitlines() if line.strip() and "..." not in line and "%" not in line]
        clean = "Traceback" not in stderr and (proc.returncode == 0 or (proc.returncode == 130 and len(lines) == 1))
        ok = ok and clean and after_kill == 0
    return KillResult(sig.name, delay, proc.returncode, state, after_kill, after_next, stderr.strip()[-300:], ok)


def kill_campaign(runs: int, seed: int, workdir: Path, signals=(signal.SIGINT, signal.SIGKILL)) -> list[KillResult]:
    """``runs`` kills per signal at random points of a compile; returns every result."""
    calib = make_images(workdir / "images")
    duration = timed_run(calib, workdir)
    rng = random.Random(seed)
    results = []
    for i in range(runs):
        for sig in signals:
            out = workdir / f"{sig.name}-{i}"
            results.append(kill_once(sig, rng.uniform(0, 1.2 * duration), calib, out))
            shutil.rmtree(out, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the kill tests and print one line per run and the totals; status 1 if any failed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="kills per signal")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ncnnc-kill-"))
    results = kill_campaign(args.runs, args.seed, workdir)
    for r in results:
        print(f"{r.signal:<8} at {r.delay:5.2f} s: status {r.status}, outputs {r.outputs:<7} temporaries after the "
              f"kill {r.temps_after_kill}, after the next run {r.temps_after_next_run}  {'ok' if r.ok else 'FAIL'}")
        if not r.ok:
            print(f"    {r.stderr}")
    for sig in ("SIGINT", "SIGKILL"):
        rs = [r for r in results if r.signal == sig]
        states = {s: sum(r.outputs == s for r in rs) for s in ("none", "all", "partial", "broken")}
        print(f"{sig}: {len(rs)} runs, {sum(r.ok for r in rs)} ok; outputs {states}; runs that left temporaries "
              f"{sum(r.temps_after_kill > 0 for r in rs)}, left after the next run "
              f"{sum(r.temps_after_next_run > 0 for r in rs)}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
