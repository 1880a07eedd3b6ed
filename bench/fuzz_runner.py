"""Runs fuzz cases against the ``ncnnc`` CLI and checks the contract.

Each case runs in a child forked from a parent that has imported ncnnc once, calling the CLI's
``main`` in-process (no fresh interpreter per case), in its own folder and process group, with a
deadline.  The contract:

- exit status 2 with exactly one line on stderr, ``ncnnc ...: error: ...``, and every output path as
  it was before (nothing new under an output name, no device or folder replaced); or
- exit status 0, every output a regular file, and every model among them loaded by the real ncnn
  runtime (PyPI ``ncnn``, in a fresh interpreter so that a crash there is seen as such: not a forked
  child, since a process that has used the runtime holds an OpenMP thread pool a forked child would
  wait on forever);
- in both cases no temporary file left in an output folder, no traceback, no hang, no crash.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fuzz_inputs import Base, Case

TRACEBACK_STATUS = 70
"""Exit status of a case child whose ``main`` raised (the traceback is on its stderr)."""

VERDICTS = ("ok-success", "ok-error", "traceback", "hang", "crash", "runtime-refused", "half-written",
            "bad-error-line", "bad-status")
FAILURES = VERDICTS[2:]


@dataclass
class Result:
    """What one case did and the verdict."""

    case: Case
    verdict: str
    status: int | None
    stderr: str
    seconds: float
    detail: str = ""


@dataclass
class Summary:
    """Per-class verdict counts and the failing cases."""

    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    times: Counter = field(default_factory=Counter)

    def add(self, r: Result) -> None:
        """Count one result."""
        self.counts[r.case.cls][r.verdict] += 1
        self.times[r.case.cls] += r.seconds
        if r.verdict in FAILURES:
            self.failures.append(r)

    def table(self) -> str:
        """A text table: one row per input class, one column per verdict."""
        head = f"{'class':<12}" + "".join(f"{v:>16}" for v in VERDICTS) + f"{'total':>8}{'s/case':>8}"
        rows = [head]
        total: Counter = Counter()
        for cls in sorted(self.counts):
            c = self.counts[cls]
            total.update(c)
            rows.append(f"{cls:<12}" + "".join(f"{c[v]:>16}" for v in VERDICTS) + f"{sum(c.values()):>8}"
                        f"{self.times[cls] / max(sum(c.values()), 1):>8.2f}")
        rows.append(f"{'all':<12}" + "".join(f"{total[v]:>16}" for v in VERDICTS) + f"{sum(total.values()):>8}")
        return "\n".join(rows)


PRISTINE: dict[int, Path] = {}
"""``id()`` of an unmodified base input's bytes -> a read-only copy on disk (see :func:`keep_pristine`)."""


def keep_pristine(base: Base, folder: Path) -> None:
    """Write the base inputs once into ``folder``; cases hard-link them instead of writing copies."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in vars(base).items():
        for i, blob in enumerate(data if isinstance(data, list) else [data]):
            p = folder / f"{name}.{i}"
            p.write_bytes(blob)
            p.chmod(0o444)
            PRISTINE[id(blob)] = p


def _kind(path: Path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "absent"
    for test, name in ((stat.S_ISLNK, "link"), (stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chardev")):
        if test(mode):
            return name
    return "other"


def prepare(case: Case, folder: Path) -> dict[str, tuple[str, int]]:
    """Create the case's files and special paths in ``folder``; the outputs' state before the run."""
    for name, data in case.files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        pristine = PRISTINE.get(id(data))
        if pristine is not None:  # an unmodified real input: a hard link, not another 5 MB write
            os.link(pristine, p)
        else:
            p.write_bytes(data)
    for kind, name in case.setup:
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "dir":
            p.mkdir(exist_ok=True)
        elif kind == "readonly_dir":
            p.mkdir(exist_ok=True)
            p.chmod(0o500)
        elif kind.startswith("symlink:"):
            p.symlink_to(kind.split(":", 1)[1], target_is_directory=True)
    return {o: _state(folder / o) for o in case.outputs}


def _state(p: Path) -> tuple[str, int]:
    try:
        return _kind(p), os.lstat(p).st_mtime_ns
    except OSError:
        return "absent", 0


def _child(case: Case, folder: Path) -> None:
    """In the forked child: run the CLI's main on the case and exit with its status."""
    os.setpgid(0, 0)
    os.chdir(folder)
    out = os.open("stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open("stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    # the parent's sys.stdout/sys.stderr may not be fds 1/2 (pytest captures them): write to the case's files
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (lives until os._exit)
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    status = TRACEBACK_STATUS
    try:
        from ncnnc.core.cli import main

        status = main(list(case.argv))
    except SystemExit as e:  # argparse
        status = e.code if isinstance(e.code, int) else 2
    except BaseException:
        traceback.print_exc()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


LOAD_CHECK = """
import sys, ncnn
for param, binf in zip(sys.argv[1::2], sys.argv[2::2]):
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    if net.load_param(param) != 0 or net.load_model(binf) != 0:
        sys.exit(1)
"""
"""Run by a fresh interpreter on ``param bin`` pairs: exit 0 if the ncnn runtime loads every model, 1 if
it refuses one."""


def _load_check(models: list[tuple[Path, Path]], timeout: float) -> str | None:
    """None if the ncnn runtime loads every model, else how it did not (hang, crash, refusal)."""
    argv = [sys.executable, "-c", LOAD_CHECK, *(str(f) for pair in models for f in pair)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        return "hang"
    if done.returncode < 0:
        return "crash"
    return None if done.returncode == 0 else "load_param/load_model != 0"


def _wait(pid: int, deadline: float) -> int | None:
    """The raw wait status of ``pid``, or None (after killing its group) when the deadline passes."""
    fd = os.pidfd_open(pid)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                return os.waitpid(pid, 0)[1]
    finally:
        os.close(fd)


def _temporaries(folder: Path) -> list[str]:
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names if ".ncnnc-" in n or n.endswith(".tmp")]
    return found


def judge(case: Case, folder: Path, wait_status: int | None, before: dict[str, tuple[str, int]],
          timeout: float) -> tuple[str, int | None, str, str]:
    """``(verdict, exit status, stderr, detail)`` of a finished case."""
    stderr = (folder / "stderr").read_text(errors="replace") if (folder / "stderr").exists() else ""
    if wait_status is None:
        return "hang", None, stderr, f"no exit within {timeout:.0f} s"
    if os.WIFSIGNALED(wait_status):
        return "crash", None, stderr, f"killed by {signal.Signals(os.WTERMSIG(wait_status)).name}"
    status = os.WEXITSTATUS(wait_status)
    if status == TRACEBACK_STATUS or "Traceback (most recent call last)" in stderr:
        return "traceback", status, stderr, stderr.strip().splitlines()[-1] if stderr.strip() else ""
    temps = _temporaries(folder)
    if temps:
        return "half-written", status, stderr, f"temporary files left: {temps[:3]}"
    if status == 2:  # progress lines may come first; the error is the last line, and the only one
        lines = stderr.strip("\n").split("\n")
        errors = [line for line in lines if "error:" in line]
        if len(errors) != 1 or errors[0] != lines[-1] or not lines[-1].startswith("ncnnc"):
            return "bad-error-line", status, stderr, f"{len(errors)} error lines of {len(lines)}"
        changed = [o for o in case.outputs if _state(folder / o) != before[o]]
        if changed:
            return "half-written", status, stderr, f"outputs changed on error: {changed}"
        return "ok-error", status, stderr, ""
    if status != 0:
        return "bad-status", status, stderr, f"exit status {status}"
    missing = [o for o in case.outputs if _kind(folder / o) != "file"]
    if missing:
        return "half-written", status, stderr, f"success without regular-file outputs: {missing}"
    if case.models:
        how = _load_check([(folder / p, folder / b) for p, b in case.models], timeout)
        if how is not None:
            return "runtime-refused", status, stderr, f"ncnn runtime: {how}"
    return "ok-success", status, stderr, ""


def _start(case: Case, root: Path) -> tuple[int, Path, dict[str, tuple[str, int]], float]:
    folder = root / f"case{case.index:06d}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    before = prepare(case, folder)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(case, folder)
    return pid, folder, before, start


def _finish(case: Case, folder: Path, ws: int | None, before: dict[str, tuple[str, int]], start: float,
            timeout: float, keep: bool) -> Result:
    seconds = time.monotonic() - start
    verdict, status, stderr, detail = judge(case, folder, ws, before, timeout)
    if not keep:
        for p in folder.rglob("*"):  # a read-only folder made by a case must not stop the cleanup
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    p.chmod(0o700)
        shutil.rmtree(folder, ignore_errors=True)
    return Result(case, verdict, status, stderr, seconds, detail)


def run_case(case: Case, root: Path, timeout: float, keep: bool = False) -> Result:
    """Run one case in a fresh folder under ``root`` and judge it."""
    pid, folder, before, start = _start(case, root)
    return _finish(case, folder, _wait(pid, start + timeout), before, start, timeout, keep)


def warm_up() -> None:
    """Import everything a case may need, once, in the parent (children inherit it)."""
    import ncnn  # noqa: F401
    import onnx  # noqa: F401
    import PIL.Image  # noqa: F401

    from ncnnc.core import cli
    from ncnnc.core.registry import registry

    cli.build_parser()
    registry()


def run_cases(cases, root: Path, jobs: int, timeout: float, on_result=None, keep: bool = False) -> Summary:
    """Run ``cases`` (an iterable) with up to ``jobs`` at once, from this one thread; returns the summary.

    Children are forked from the main thread only (forking from helper threads could copy a held lock).
    """
    summary = Summary()
    begin = time.monotonic()
    running: dict[int, tuple[Case, Path, dict[str, tuple[str, int]], float]] = {}
    pending = iter(cases)
    exhausted = False

    def done(pid: int, ws: int | None) -> None:
        case, folder, before, start = running.pop(pid)
        r = _finish(case, folder, ws, before, start, timeout, keep)
        summary.add(r)
        if on_result:
            on_result(r)

    while True:
        while not exhausted and len(running) < jobs:
            case = next(pending, None)
            if case is None:
                exhausted = True
                break
            pid, folder, before, start = _start(case, root)
            running[pid] = (case, folder, before, start)
        if not running:
            break
        pid, ws = os.waitpid(-1, os.WNOHANG)
        if pid in running:
            done(pid, ws)
            continue
        now = time.monotonic()
        for pid, (_, _, _, start) in list(running.items()):
            if now - start > timeout:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                done(pid, None)
        time.sleep(0.002)
    summary.seconds = time.monotonic() - begin
    return summary


def describe(r: Result) -> str:
    """One failing case in a few lines: class, index, argv, verdict, what it said."""
    tail = r.stderr.strip().splitlines()[-3:]
    return (f"[{r.case.cls} #{r.case.index}] {r.verdict}: {r.detail}\n    ncnnc {' '.join(r.case.argv)[:300]}"
            + (f" ({r.case.note})" if r.case.note else "") + "".join(f"\n    | {line[:300]}" for line in tail))


__all__ = ["Base", "Result", "Summary", "describe", "run_case", "run_cases", "warm_up"]
