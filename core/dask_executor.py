"""Calibration shards as tasks on a ``dask.distributed`` cluster (``pip install 'ncnnc[dask]'``).

The job (model and image lists) is scattered to every worker once; each task names a shard's
batches, reads those images on the worker and returns the shard's statistics.  Shard ``i`` of a
later pass is sent back to the worker that ran it before (when that worker is still there), which
keeps the activations it saved for the replay.  At most ``window`` shards are in flight, and
results are merged in shard order as they arrive, so the driver holds a bounded number of results
however many images there are.  A task whose worker dies is rerun by Dask; a task that raised is
retried ``retries`` times; after that the calibration ends with one error and writes nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from ncnnc.core.errors import NcnncError
from ncnnc.core.executors import Executor, Job, Session, Shard, ShardTask, Tick, Worker

INSTALL_HINT = ("executor=dask needs Dask's distributed scheduler, which is not installed: "
                "pip install 'ncnnc[dask]' (or pip install 'dask[distributed]')")

SHARD_BATCHES = 8
"""Batches per task by default (32 images at the default batch size): small enough to balance and retry,
large enough to amortise a task."""

CONNECT_SECONDS = 30
"""How long to wait for the scheduler, and for its first worker."""


def _distributed() -> Any:
    """The ``distributed`` package, or the user error saying what to install."""
    try:
        import distributed
    except ImportError:
        raise NcnncError(INSTALL_HINT) from None
    return distributed


def is_client(obj: Any) -> bool:
    """True if ``obj`` is a ``distributed.Client`` (without importing distributed if it is not loaded)."""
    module = sys.modules.get("distributed")
    return module is not None and isinstance(obj, module.Client)


class DaskExecutor(Executor):
    """Shards as ``dask.distributed`` tasks.

    ``target``: a ``distributed.Client``, a scheduler address (``tcp://host:8786``), or None to
    start a cluster of ``local_workers`` single-threaded worker processes on this machine.
    ``shard_batches`` batches make one task; ``retries`` reruns a task that raised.
    """

    name = "dask"

    def __init__(self, target: Any = None, *, local_workers: int = 1, shard_batches: int = SHARD_BATCHES,
                 retries: int = 2) -> None:
        _distributed()
        if shard_batches < 1:
            raise NcnncError(f"shard size {shard_batches}: need at least 1 batch")
        self.target = target
        self.local_workers = local_workers
        self.shard_batches = shard_batches
        self.retries = retries
        self.threads = 1  # the cluster's worker threads, known once a session is open

    def shard_count(self, batches: int) -> int:
        """``shard_batches`` batches per shard, but at least one shard per worker thread (and batch)."""
        return max(1, math.ceil(batches / self.shard_batches), min(batches, self.threads))

    def open(self, job: Job) -> Session:
        """Connect (or start a local cluster), wait for a worker, scatter the job."""
        distributed = _distributed()
        owned: list[Any] = []
        if is_client(self.target):
            client = self.target
        elif self.target is None:
            cluster = distributed.LocalCluster(n_workers=self.local_workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
            owned += [client, cluster]
        else:
            try:
                client = distributed.Client(str(self.target), timeout=CONNECT_SECONDS)
            except (OSError, TimeoutError, ValueError) as e:
                raise NcnncError(f"cannot reach the Dask scheduler at {self.target}: {e}") from None
            owned.append(client)
        try:
            session = _DaskSession(client, job, self.retries, owned)
        except BaseException:
            for thing in owned:
                thing.close()
            raise
        self.threads = session.threads
        return session


# -- the worker side ---------------------------------------------------------------------------------
_WORKERS: dict[tuple[str, int], Worker] = {}
_WORKERS_LOCK = threading.Lock()

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc ``mallopt`` parameters."""


@functools.cache
def roomy_malloc() -> None:
    """Give large allocations back glibc's usual behaviour in this (worker) process.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which freezes glibc's mmap
    threshold at 128 KB: every large numpy temporary is then a fresh ``mmap`` whose pages fault in
    one by one (eq's search ran 1.6x slower so).  These are the values glibc's own dynamic threshold
    reaches after the first large free (32 MB, trim at twice that).  Nothing happens off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 64 << 20)


def _run_task(job: Job, token: str, task: ShardTask, shard: list[range]) -> tuple[str, Any, str]:
    """On a Dask worker: run ``task`` on ``shard`` with this thread's :class:`Worker` of the job.

    A user error (an unreadable image) comes back as a value, so Dask does not retry it.
    """
    from distributed import get_worker

    roomy_malloc()
    key = (token, threading.get_ident())
    with _WORKERS_LOCK:
        worker = _WORKERS.get(key)
        if worker is None:
            worker = _WORKERS[key] = Worker(job)
    try:
        return "ok", task(worker, shard, lambda n: None), get_worker().address
    except NcnncError as e:
        return "error", (e.message, e.path, e.where), ""


def _forget(token: str) -> None:
    """On a Dask worker: drop the job's interpreters and kept activations."""
    with _WORKERS_LOCK:
        for key in [k for k in _WORKERS if k[0] == token]:
            del _WORKERS[key]


# -- the driver side ---------------------------------------------------------------------------------
class _DaskSession(Session):
    def __init__(self, client: Any, job: Job, retries: int, owned: list[Any]) -> None:
        self.client, self.retries, self.owned = client, retries, owned
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            raise NcnncError(f"no Dask worker joined the scheduler at {client.scheduler.address} "
                             f"within {CONNECT_SECONDS} s") from None
        self.token = uuid.uuid4().hex
        self.job = client.scatter(job, broadcast=True, hash=False)
        self.threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        self.window = max(4, 2 * self.threads)
        self.home: dict[int, str] = {}  # a shard's first image -> the worker that ran it last
        self.rounds = 0

    def map(self, task: ShardTask, shards: Sequence[Shard], tick: Tick) -> Iterator[Any]:
        self.rounds += 1
        task_ref = self.client.scatter(task, broadcast=True, hash=False)
        pending: dict[int, Any] = {}
        try:
            submitted = 0
            for want in range(len(shards)):
                while submitted < len(shards) and submitted - want < self.window:
                    pending[submitted] = self._submit(task_ref, shards[submitted], submitted)
                    submitted += 1
                result = self._result(pending.pop(want), shards[want])
                tick(sum(len(r) for r in shards[want]))
                yield result
        finally:
            if pending:
                self.client.cancel(list(pending.values()))
            self.client.cancel([task_ref])

    def _submit(self, task_ref: Any, shard: Shard, index: int) -> Any:
        home = self.home.get(shard[0].start)
        return self.client.submit(_run_task, self.job, self.token, task_ref, list(shard),
                                  key=f"ncnnc-calibrate-{self.token}-{self.rounds}-{index}", pure=False,
                                  retries=self.retries, workers=[home] if home else None,
                                  allow_other_workers=bool(home))

    def _result(self, future: Any, shard: Shard) -> Any:
        first, last = shard[0].start, shard[-1].stop - 1
        try:
            status, payload, address = future.result()
        except Exception as e:  # a worker lost too often (KilledWorker), a crash after the retries, ...
            raise NcnncError(f"images {first}-{last} failed on the Dask cluster after {self.retries} retries "
                             f"({type(e).__name__}: {e}); nothing was written") from None
        finally:
            future.release()
        if status == "error":
            raise NcnncError(*payload)
        self.home[first] = address
        return payload

    def close(self) -> None:
        """Drop the job on every worker; close what this session started."""
        try:
            self.client.cancel([self.job])
            self.client.run(_forget, self.token)
        except Exception:  # the cluster may be gone already: nothing left to free then
            logging.getLogger(__name__).debug("could not clean up job %s", self.token, exc_info=True)
        finally:
            for thing in self.owned:
                thing.close()
