"""Calibration through executors: a real ``distributed.LocalCluster`` (2 worker processes) gives the
same table bytes as local processes, survives or cleanly refuses a killed worker, and drives the
command line (``table executor=dask scheduler=...``, ``compile --executor dask --scheduler ...``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ncnnc.core.calibration import calibrate
from ncnnc.core.dask_executor import INSTALL_HINT, DaskExecutor
from ncnnc.core.errors import NcnncError
from ncnnc.core.executors import split

distributed = pytest.importorskip("distributed", reason="the test extra installs dask[distributed]")

PREP = dict(mean=[104, 117, 123], norm=[1, 1, 1], shape=[227, 227, 3], pixel="BGR", batch_size=2)
EQ_PARAMS = {"images": 4, "steps": 5}  # eq's search on 2 batches (2 shards on 2 workers), 5 candidates


@pytest.fixture(scope="module")
def model(squeezenet_dir: Path) -> tuple[str, str]:
    ref = squeezenet_dir / "ncnn-reference" / "squeezenet_v1.1-opt32"
    return f"{ref}.param", f"{ref}.bin"


@pytest.fixture(scope="module")
def images40(tmp_path_factory, image_paths) -> Path:
    lst = tmp_path_factory.mktemp("images") / "images.txt"
    lst.write_text("".join(f"{p}\n" for p in image_paths[:40]))
    return lst


def _cluster():
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                    silence_logs=40)


@pytest.fixture(scope="module")
def client():
    with _cluster() as cluster, distributed.Client(cluster) as c:
        yield c


class LocalTables(dict):
    """Tables made by 2 local processes on the 40 images, made on first use (once per test process)."""

    def __init__(self, model, images: Path, folder: Path) -> None:
        super().__init__()
        self.model, self.images, self.folder = model, images, folder

    def __missing__(self, method: str) -> bytes:
        out = self.folder / f"{method}.table"
        calibrate(*self.model, self.images, out, method=method, method_params=EQ_PARAMS if method == "eq" else None,
                  threads=2, **PREP)
        self[method] = out.read_bytes()
        return self[method]


@pytest.fixture(scope="module")
def local_tables(model, images40, tmp_path_factory) -> LocalTables:
    return LocalTables(model, images40, tmp_path_factory.mktemp("local"))


def test_dask_tables_equal_local(model, images40, client, local_tables, tmp_path):
    """kl (2 passes, 5 tasks), aciq (1 pass) and eq (kl, then its search's two stages as tasks)."""
    for method in ("kl", "aciq", "eq"):
        out = tmp_path / f"{method}.table"
        result = calibrate(*model, images40, out, method=method,
                           method_params=EQ_PARAMS if method == "eq" else None, executor=client, **PREP)
        assert result.images == 40 and len(result.layers) == 26
        assert out.read_bytes() == local_tables[method], method
    assert local_tables["eq"] != local_tables["kl"]  # eq's search moved some scales: its tasks did work


def test_killed_worker_recovers_or_fails_cleanly(model, images40, local_tables, tmp_path):
    """SIGKILL one worker process while shards run (20 of one batch each, so another shard count than the
    local table's): the same table, or one clean error and no file."""
    out = tmp_path / "killed.table"
    with _cluster() as cluster, distributed.Client(cluster) as c:
        pids = list(c.run(os.getpid).values())
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                calibrate(*model, images40, out, method="kl", executor=DaskExecutor(c, shard_batches=1), **PREP)
                outcome["ok"] = True
            except NcnncError as e:
                outcome["error"] = e

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while not any(c.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # some shards done, some in flight
        os.kill(pids[0], signal.SIGKILL)
        worker.join(timeout=180)
        assert not worker.is_alive()
    if "ok" in outcome:
        assert out.read_bytes() == local_tables["kl"]
    else:
        assert "Dask cluster" in str(outcome["error"]) and not out.exists()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncnnc", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_table_command_on_a_scheduler(model, images40, client, local_tables, tmp_path):
    out = tmp_path / "cli.table"
    done = _cli("table", *model, str(images40), str(out), "mean=[104,117,123]", "norm=[1,1,1]",
                "shape=[227,227,3]", "pixel=BGR", "batch=2", "method=aciq", "executor=dask",
                f"scheduler={client.scheduler.address}")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == local_tables["aciq"]


def test_compile_on_a_scheduler_gives_the_same_model(model, image_paths, client, tmp_path):
    calib = tmp_path / "calib.txt"
    calib.write_text("".join(f"{p}\n" for p in image_paths[:8]))
    common = [*model, "--int8", "--calib", str(calib), "mean=[104,117,123]", "norm=[1,1,1]", "shape=[227,227,3]",
              "pixel=BGR"]
    local = _cli("compile", *common, "-o", str(tmp_path / "local"))
    dask = _cli("compile", *common, "--executor", "dask", "--scheduler", client.scheduler.address,
                "-o", str(tmp_path / "dask"))
    assert local.returncode == 0 and dask.returncode == 0, local.stderr + dask.stderr
    for name in ("model.param", "model.bin", "model.table"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_without_distributed_one_clear_error(model, images40, tmp_path):
    """With ``distributed`` not importable, executor=dask is one line saying what to install, exit 2."""
    out = tmp_path / "t.table"
    code = ("import sys; sys.modules['distributed'] = None; from ncnnc.core.cli import main; "
            f"sys.exit(main({['table', *model, str(images40), str(out), 'executor=dask']!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"ncnnc table: error: {INSTALL_HINT}" and not out.exists()


@pytest.mark.parametrize(("images", "batch", "parts", "counts"), [
    (100, 8, 2, [48, 52]), (100, 8, 3, [32, 32, 36]), (40, 2, 2, [20, 20]), (7, 2, 3, [2, 2, 3]),
    (5, 1, 8, [1, 1, 1, 1, 1]), (1, 8, 2, [1]), (10000, 8, 2, [5000, 5000])])
def test_split_keeps_batches_whole_and_balances_images(images, batch, parts, counts):
    plan = [range(i, min(i + batch, images)) for i in range(0, images, batch)]
    shards = split(plan, parts)
    assert [r for shard in shards for r in shard] == plan
    assert [sum(len(r) for r in shard) for shard in shards] == counts


def test_unknown_executor_is_a_user_error(model, images40, tmp_path):
    done = _cli("table", *model, str(images40), str(tmp_path / "t.table"), "executor=spark")
    assert done.returncode == 2 and "executor=spark: unknown (one of local, dask)" in done.stderr
