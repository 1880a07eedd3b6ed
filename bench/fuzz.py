"""The fuzz campaign: ``python bench/fuzz.py --cases 10000`` mutates real inputs of every class and checks the CLI.

Classes (one generator each, ``bench/fuzz_inputs.py``): ``param``, ``param-int8``, ``param.bin``, ``bin``,
``table``, ``prototxt``, ``caffemodel``, ``onnx``, ``image``, ``list``, ``options``, ``outputs``; cases take the
classes in turn.  The contract (``bench/fuzz_runner.py``): a one-line error with exit status 2 and no
output touched, or success whose models the real ncnn runtime loads; never a traceback, a hang (per-case
timeout), a crash or a half-written output.  Prints a table of verdicts per class and every failing
case with the command that replays it (``--seed S --case I --keep``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_inputs import GENERATORS, load_base, make_case
from fuzz_runner import FAILURES, describe, keep_pristine, run_cases, warm_up


def campaign(cases: int, seed: int, jobs: int, timeout: float, workdir: Path, classes: tuple[str, ...],
             only: int | None = None, keep: bool = False, progress: bool = True):
    """Run the campaign; returns the :class:`~fuzz_runner.Summary`."""
    base = load_base(workdir)
    keep_pristine(base, workdir / "pristine")
    warm_up()
    indices = [only] if only is not None else range(cases)
    done = [0]
    start = time.monotonic()

    def on_result(r) -> None:
        done[0] += 1
        if r.verdict in FAILURES:
            print(describe(r), flush=True)
        if progress and done[0] % 250 == 0:
            rate = done[0] / (time.monotonic() - start)
            print(f"... {done[0]}/{len(indices)} cases, {rate:.1f}/s", file=sys.stderr, flush=True)

    return run_cases((make_case(seed, i, base, classes) for i in indices), workdir, jobs, timeout, on_result, keep)


def main(argv: list[str] | None = None) -> int:
    """Command line of the campaign; exit status 1 if any case broke the contract."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--classes", default=",".join(GENERATORS), help="comma-separated input classes")
    ap.add_argument("--case", type=int, help="replay this one case index")
    ap.add_argument("--keep", action="store_true", help="keep each case's folder (with --case)")
    ap.add_argument("--workdir", help="where cases run (default: a fresh temporary folder)")
    args = ap.parse_args(argv)
    classes = tuple(c for c in args.classes.split(",") if c)
    unknown = [c for c in classes if c not in GENERATORS]
    if unknown:
        ap.error(f"unknown classes {unknown} (one of {', '.join(GENERATORS)})")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ncnnc-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"fuzz: seed {args.seed}, {args.cases if args.case is None else 1} cases, {args.jobs} jobs, "
          f"timeout {args.timeout:.0f} s, in {workdir}", flush=True)
    summary = campaign(args.cases, args.seed, args.jobs, args.timeout, workdir, classes, args.case, args.keep)
    print(summary.table())
    n = sum(sum(c.values()) for c in summary.counts.values())
    print(f"{n} cases in {summary.seconds:.0f} s ({n / max(summary.seconds, 1e-9):.1f} cases/s); "
          f"{len(summary.failures)} broke the contract")
    for r in summary.failures:
        print(f"replay: python bench/fuzz.py --seed {args.seed} --case {r.case.index} --keep")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
