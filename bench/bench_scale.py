"""Calibration at scale: wall time and peak memory of ``ncnnc table`` by executor and set size.

    python bench/bench_scale.py [--images 100 1000] [--method kl] [--configs thread=1 thread=2 dask]
                                [--shape 227,227,3] [--rounds 1]

Each run is a fresh ``ncnnc table`` process (start-up included) on the -opt32 SqueezeNet with
the shared images (repeated past 500) in the same order, timed from outside.  Configurations:
``thread=N`` (local processes) and ``dask`` (a ``distributed.LocalCluster`` of 2 single-threaded
worker processes on this machine, started afresh before each run, ncnnc imported on its workers,
neither timed, as a standing cluster would be; the command is given its address).  Printed per run: wall seconds,
the driver's peak RSS, the largest worker's peak RSS (forked processes, or Dask workers), and
the ratios to ``thread=1`` on the same images.  Every table is checked byte-identical to the
first configuration's.  The machine is shared: the numbers are the best of ``--rounds`` rounds,
the configurations interleaved within each round.  ``--shape 64,64,3`` resizes the images smaller
(SqueezeNet still runs), for a quick look at how memory grows with the number of images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "squeezenet_v1.1" / "ncnn-reference" / "squeezenet_v1.1-opt32"
IMAGES = SHARED / "images" / "imagenet-sample"
PREP = ["mean=[104,117,123]", "norm=[1,1,1]", "pixel=BGR"]

CHILD = """
import json, resource, sys
from ncnnc.core.cli import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "driver_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def image_list(folder: Path, count: int) -> Path:
    """A list of ``count`` shared images (sorted by name, repeated past 500)."""
    paths = sorted(IMAGES.iterdir())
    lst = folder / f"images-{count}.txt"
    lst.write_text("".join(f"{paths[i % len(paths)]}\n" for i in range(count)))
    return lst


def table_path(folder: Path, count: int, config: str) -> Path:
    """Where a run writes its table (no ``=`` in the name: ncnnc table would read it as an option)."""
    return folder / f"{count}-{config.replace('=', '')}.table"


def run_table(lst: Path, out: Path, method: str, shape: str, extra: list[str]) -> dict:
    """One ``ncnnc table`` process: wall seconds and its rusage figures."""
    args = [f"{MODEL}.param", f"{MODEL}.bin", str(lst), str(out), *PREP, f"shape=[{shape}]", f"method={method}",
            *extra]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, "table", *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ncnnc table failed: {done.stderr.strip()}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall": wall, "driver_mb": report["driver_kb"] / 1024, "worker_mb": report["children_kb"] / 1024}


def warm_up() -> None:
    """On a Dask worker: import ncnnc, its numpy backend and its plugins (what a first task would)."""
    from ncnnc.backends.numpy import Interpreter  # noqa: F401
    from ncnnc.core.registry import registry

    registry()


def run_dask(lst: Path, out: Path, args: argparse.Namespace) -> dict:
    """One run on a fresh 2-worker LocalCluster (its start not timed); the workers' peak RSS too."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        client.run(warm_up)  # a standing cluster's workers have imported ncnnc already
        got = run_table(lst, out, args.method, args.shape, [f"scheduler={client.scheduler.address}"])
        rss = client.run(lambda: __import__("resource").getrusage(0).ru_maxrss)
    got["worker_mb"] = max(rss.values()) / 1024
    return got


def main() -> None:
    """Run every configuration on every set size; print the table of results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--images", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--method", default="kl")
    parser.add_argument("--configs", nargs="+", default=["thread=1", "thread=2", "dask"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--shape", default="227,227,3", help="ncnn2table's shape=, w,h,c")
    args = parser.parse_args()
    best: dict[tuple[int, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for count in args.images:
            lst = image_list(folder, count)
            for _ in range(args.rounds):
                for config in args.configs:
                    out = table_path(folder, count, config)
                    got = run_dask(lst, out, args) if config == "dask" else run_table(lst, out, args.method,
                                                                                      args.shape, [config])
                    print(f"  {count} images {config}: {got['wall']:.2f} s, driver {got['driver_mb']:.0f} MB, "
                          f"worker {got['worker_mb']:.0f} MB", flush=True)
                    key = (count, config)
                    if key not in best or got["wall"] < best[key]["wall"]:
                        best[key] = got
            first = table_path(folder, count, args.configs[0]).read_bytes()
            same = all(table_path(folder, count, c).read_bytes() == first for c in args.configs)
            print(f"{count} images: tables byte-identical across configurations: {same}", flush=True)
    print(f"\nncnnc table method={args.method} shape=[{args.shape}], SqueezeNet -opt32, "
          f"best of {args.rounds} round(s), {os.cpu_count()} cores (shared machine)")
    print(f"{'images':>7} {'config':>9} {'wall s':>8} {'x thread=1':>10} {'driver MB':>10} {'x thread=1':>10} "
          f"{'worker MB':>10}")
    for count in args.images:
        base = best.get((count, "thread=1"))
        for config in args.configs:
            r = best[(count, config)]
            wall_ratio = f"{r['wall'] / base['wall']:.2f}" if base else "-"
            rss_ratio = f"{r['driver_mb'] / base['driver_mb']:.2f}" if base else "-"
            print(f"{count:>7} {config:>9} {r['wall']:>8.2f} {wall_ratio:>10} {r['driver_mb']:>10.0f} {rss_ratio:>10} "
                  f"{r['worker_mb']:>10.0f}")


if __name__ == "__main__":
    main()
