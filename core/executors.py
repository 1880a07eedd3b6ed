"""Where calibration work runs: local processes (the default) or a Dask cluster.

The calibration driver cuts the images into fixed batches and the batches into contiguous shards.
An :class:`Executor` ships the model and the image lists to its workers once (a :class:`Job`),
then runs a shard task on every shard and hands the results back in shard order; the driver merges
them in that order.  A task only ever returns statistics (histograms, maxima, sums): activations
stay on the worker that computed them.  Because batches are fixed and merges exact, the result does
not depend on the executor, the number of workers or the number of shards.

- :class:`LocalExecutor` -- ``threads`` shards, one per forked process (one: in this process).
- :class:`~ncnnc.core.dask_executor.DaskExecutor` -- tasks on a ``dask.distributed`` cluster
  (``pip install 'ncnnc[dask]'``), with Dask's retries when a worker dies.

A shard task is a picklable callable ``task(worker, shard, tick)``: ``worker`` is the
:class:`Worker` (the model's interpreter, built once per worker, and memory for activations kept
between passes), ``shard`` the batches (image index ranges) to process, ``tick(n)`` reports ``n``
images done.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import multiprocessing
import queue
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ncnnc.core.errors import NcnncError

if TYPE_CHECKING:
    from ncnnc.core.calibration import InputSpec
    from ncnnc.core.ir import Graph

Shard = Sequence[range]
"""Consecutive batches, each a range of image indices."""

Tick = Callable[[int], None]
"""Called with a count of images as they are done."""


@dataclass
class Job:
    """What every worker needs, sent once: the model, the model inputs' files, the memory budget.

    ``cache_bytes`` bounds the activations one worker keeps between passes (the rest is recomputed).
    """

    graph: Graph
    specs: list[InputSpec]
    cache_bytes: int = 0


class Worker:
    """A worker's side of a :class:`Job`: the interpreter, built on first use, and kept activations."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.cache: dict[Any, tuple[Any, int]] = {}
        self.cache_left = job.cache_bytes
        self._interpreter: Any = None

    def interpreter(self) -> Any:
        """The fp32 numpy interpreter of the job's model (built once per worker)."""
        if self._interpreter is None:
            from ncnnc.backends.numpy import Interpreter

            self._interpreter = Interpreter(self.job.graph)
        return self._interpreter

    def keep(self, key: Any, value: Any, nbytes: int) -> bool:
        """Keep ``value`` under ``key`` if ``nbytes`` fit in what is left of the budget."""
        if nbytes > self.cache_left:
            return False
        self.cache[key] = (value, nbytes)
        self.cache_left -= nbytes
        return True

    def kept(self, key: Any, drop: bool = False) -> Any:
        """What was kept under ``key`` (None if nothing); ``drop``: forget it and free its budget."""
        if key not in self.cache:
            return None
        value, nbytes = self.cache.pop(key) if drop else self.cache[key]
        if drop:
            self.cache_left += nbytes
        return value


ShardTask = Callable[[Worker, Shard, Tick], Any]
"""``task(worker, shard, tick) -> result``: picklable, returns statistics only."""


def split(plan: Sequence[range], parts: int) -> list[list[range]]:
    """``plan``'s batches as at most ``parts`` contiguous shards with as equal image counts as whole
    batches allow (the short last batch counts for what it holds)."""
    parts = max(1, min(parts, len(plan)))
    ends = list(itertools.accumulate(len(b) for b in plan))  # images up to and including each batch
    cuts = [0]
    for k in range(1, parts):
        target = ends[-1] * k / parts
        i = bisect.bisect_left(ends, target)  # first batch reaching the target; the one before may be closer
        if i > 0 and target - ends[i - 1] <= ends[i] - target:
            i -= 1
        cuts.append(min(max(i + 1, cuts[-1] + 1), len(plan) - (parts - k)))
    cuts.append(len(plan))
    return [list(plan[a:b]) for a, b in itertools.pairwise(cuts)]


class Session(ABC):
    """An executor at work on one job: ``map`` runs tasks on shards; ``close`` frees the workers."""

    @abstractmethod
    def map(self, task: ShardTask, shards: Sequence[Shard], tick: Tick) -> Iterator[Any]:
        """Run ``task`` on every shard; yield the results in shard order."""

    def map_here(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]`` on this machine (by its worker processes, if it has some).

        For the driver's own work after a merge (kl's threshold searches): it stays on the machine
        that merged, so it runs the same numpy whatever the cluster's machines are.
        """
        return [fn(item) for item in items]

    def close(self) -> None:  # noqa: B027 (optional: nothing to free by default)
        """Free the workers."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Executor(ABC):
    """Runs shard tasks of a calibration somewhere: a factory of :class:`Session` objects."""

    name: str = ""

    @abstractmethod
    def shard_count(self, batches: int) -> int:
        """How many shards to cut ``batches`` batches into."""

    @abstractmethod
    def open(self, job: Job) -> Session:
        """Ship ``job`` to the workers (once) and return a session running tasks on it."""


# -- local processes -------------------------------------------------------------------------------
class LocalExecutor(Executor):
    """``threads`` shards: run in this process for one, by as many forked processes for more."""

    name = "local"

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise NcnncError(f"thread={threads}: need at least 1")
        self.threads = threads

    def shard_count(self, batches: int) -> int:
        """One shard per process."""
        return min(self.threads, max(1, batches))

    def open(self, job: Job) -> Session:
        """In-process for one thread, else forked processes that inherit the job (nothing is copied)."""
        if self.threads == 1:
            return _InProcess(job)
        return _Forked(job, self.threads)


class _InProcess(Session):
    def __init__(self, job: Job) -> None:
        self.worker = Worker(job)

    def map(self, task: ShardTask, shards: Sequence[Shard], tick: Tick) -> Iterator[Any]:
        for shard in shards:
            yield task(self.worker, shard, tick)


def _process_main(job: Job, budget_share: int, commands: Any, results: Any) -> None:
    """Body of a forked worker: run each ``(index, task, shard)`` command, send ticks and results."""
    job.cache_bytes = budget_share
    worker = Worker(job)
    try:
        while (cmd := commands.recv()) is not None:
            index, task, shard = cmd
            out = task(worker, shard, lambda n: results.put(("tick", -1, n)))
            results.put(("done", index, out))
    except NcnncError as e:
        results.put(("error", -1, e))
    except BaseException as e:  # an internal failure: report it, the parent raises
        import traceback

        results.put(("crash", -1, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


@dataclass
class _EachItem:
    """A shard task applying ``fn`` to each item of the shard (for :meth:`Session.map_here`)."""

    fn: Callable[[Any], Any]

    def __call__(self, worker: Worker, items: Sequence[Any], tick: Tick) -> list[Any]:
        return [self.fn(item) for item in items]


class _Forked(Session):
    """Forked processes; shard ``i`` always goes to process ``i % n`` (so kept activations are found)."""

    POLL_SECONDS = 0.5

    def __init__(self, job: Job, processes: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.results = ctx.Queue()
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_process_main, args=(job, job.cache_bytes // processes, child, self.results),
                               daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def map(self, task: ShardTask, shards: Sequence[Shard], tick: Tick) -> Iterator[Any]:
        for i, shard in enumerate(shards):
            self.pipes[i % len(self.pipes)].send((i, task, list(shard)))
        done: dict[int, Any] = {}
        for want in range(len(shards)):
            while want not in done:
                kind, index, payload = self._next()
                if kind == "tick":
                    tick(payload)
                elif kind == "done":
                    done[index] = payload
                elif kind == "error":
                    raise payload
                else:
                    raise RuntimeError(f"calibration worker failed: {payload}")
            yield done.pop(want)

    def map_here(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """Split ``items`` among the worker processes."""
        chunks = [items[i::len(self.procs)] for i in range(len(self.procs))]
        parts = list(self.map(_EachItem(fn), [c for c in chunks if c], lambda n: None))
        out: list[Any] = [None] * len(items)
        for i, part in enumerate(parts):
            out[i::len(self.procs)] = part
        return out

    def _next(self) -> tuple[str, int, Any]:
        """The next message of any worker; a worker that died is a clean error, not a hang."""
        while True:
            try:
                return self.results.get(timeout=self.POLL_SECONDS)
            except queue.Empty:
                for proc in self.procs:
                    if not proc.is_alive():
                        raise NcnncError(f"calibration worker process {proc.pid} died "
                                         f"(exit status {proc.exitcode}); nothing was written") from None

    def close(self) -> None:
        """Stop the worker processes (every result is in by now: nothing of theirs is left to wait for)."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for proc in self.procs:
            proc.kill()
            proc.join()


# -- choosing one ------------------------------------------------------------------------------------
EXECUTORS = ("local", "dask")
"""The executor names the command line takes."""


def make_executor(executor: Executor | str | Any | None = None, scheduler: str | None = None,
                  threads: int = 1, shard_batches: int | None = None) -> Executor:
    """An executor from the user's words.

    ``executor``: an :class:`Executor`, a ``distributed.Client``, ``"local"`` (default) or
    ``"dask"``; ``scheduler`` is a Dask scheduler address (``tcp://host:8786``; implies ``"dask"``);
    ``"dask"`` without an address starts a cluster of ``threads`` worker processes on this machine.
    ``shard_batches``: batches per Dask task (Dask only).
    """
    if isinstance(executor, Executor):
        if scheduler or shard_batches:
            raise NcnncError("scheduler= and shard= are settings of executor=dask, given an executor object")
        return executor
    if executor is None:
        executor = "dask" if scheduler else "local"
    if isinstance(executor, str):
        name = executor.lower()
        if name not in EXECUTORS:
            raise NcnncError(f"executor={executor}: unknown (one of {', '.join(EXECUTORS)})")
        if name == "local":
            if scheduler or shard_batches:
                raise NcnncError("scheduler= and shard= apply to executor=dask only")
            return LocalExecutor(threads)
    from ncnnc.core.dask_executor import SHARD_BATCHES, DaskExecutor, is_client

    if isinstance(executor, str):
        return DaskExecutor(scheduler, local_workers=threads, shard_batches=shard_batches or SHARD_BATCHES)
    if is_client(executor):
        return DaskExecutor(executor, shard_batches=shard_batches or SHARD_BATCHES)
    raise NcnncError(f"executor={executor!r}: expected 'local', 'dask', a distributed.Client or an Executor")
