"""Files in and out, safely.

Inputs: :func:`read_input` reads only regular files (a FIFO, a device or a folder given as a model
would block or never end) and never blocks on opening.

Outputs: :func:`atomic_outputs` writes every output of a command to a temporary file beside its
target and renames them all into place at the end, so a failure leaves nothing half-written and
the outputs appear together or not at all:

- the targets are checked before anything is written (an existing folder or device, a missing
  folder, two outputs naming one file are user errors);
- temporary files are named ``.NAME.ncnnc-PID-RANDOM.tmp``; every live one is registered, so
  :func:`remove_temporaries` (called by the CLI's signal handlers) deletes them on any catchable
  signal, and the ``finally`` of the block on any exception;
- catchable signals are held back while the renames run, and a journal beside the outputs lists
  the renames first, so a ``SIGKILL`` in between is completed by the next run into that folder;
- the next run into a folder removes the temporary files and finishes the journals of runs that
  were killed (their process no longer exists).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

from ncnnc.core.errors import NcnncError

_LIVE: set[Path] = set()
"""Temporary files of this process not yet renamed or removed."""

_TEMP = re.compile(r"^\..*\.ncnnc-(\d+)-[0-9a-f]+\.(tmp|journal)$")
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                signal.SIGALRM, signal.SIGPIPE)
"""Catchable signals held back while outputs are renamed into place."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_input(path: str | Path, what: str = "") -> bytes:
    """The bytes of an input file; a user error (``cannot read [what]: ...``) if it is missing, unreadable
    or not a regular file."""
    prefix = f"cannot read {what}" if what else "cannot read"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise NcnncError(f"{prefix}: {e.strerror}", str(path)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NcnncError(f"{prefix}: it is {_kind(mode)}, not a regular file", str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise NcnncError(f"{prefix}: {e.strerror or e}", str(path)) from None
    finally:
        os.close(fd)


def check_input(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is an existing regular file (not a FIFO or device that would block), else a user error."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NcnncError(f"{what} file not found", str(path)) from None
    except OSError as e:
        raise NcnncError(f"cannot read {what}: {e.strerror}", str(path)) from None
    if not stat.S_ISREG(mode):
        raise NcnncError(f"cannot read the {what}: it is {_kind(mode)}, not a regular file", str(path))
    return Path(path)


def remove_temporaries() -> None:
    """Delete every temporary output file of this process (safe to call from a signal handler)."""
    for tmp in list(_LIVE):
        with contextlib.suppress(OSError):
            tmp.unlink()
        _LIVE.discard(tmp)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_stale(folder: Path) -> None:
    """Finish the journals and remove the temporary files that killed ncnnc runs left in ``folder``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    stale = [(n, m) for n in names if (m := _TEMP.match(n)) and not _alive(int(m.group(1)))]
    for name, m in stale:  # journals first: their renames complete an interrupted commit
        if m.group(2) == "journal":
            _finish_journal(folder / name)
    for name, m in stale:
        if m.group(2) == "tmp":
            with contextlib.suppress(OSError):
                (folder / name).unlink()


def _finish_journal(journal: Path) -> None:
    with contextlib.suppress(OSError, ValueError, TypeError):
        for tmp, final in json.loads(journal.read_text()):
            if os.path.lexists(tmp):
                os.replace(tmp, final)
    with contextlib.suppress(OSError):
        journal.unlink()


def _check_target(p: Path) -> None:
    folder = p.parent if str(p.parent) else Path(".")
    if not p.name or p.name in (".", ".."):
        raise NcnncError("an output path must name a file", str(p))
    try:
        folder_mode = os.stat(folder).st_mode
    except OSError as e:
        raise NcnncError(f"cannot write into {folder}: {e.strerror}", str(p)) from None
    if not stat.S_ISDIR(folder_mode):
        raise NcnncError(f"cannot write: {folder} is not a directory", str(p))
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise NcnncError(f"cannot write: {e.strerror}", str(p)) from None
    if not stat.S_ISREG(mode):
        raise NcnncError(f"cannot write: the output is {_kind(mode)} (ncnnc replaces only regular files)", str(p))


def _same_files(paths: list[Path]) -> None:
    seen: dict[tuple[int, int] | str, Path] = {}
    for p in paths:
        keys: list[tuple[int, int] | str] = [os.path.realpath(p)]
        with contextlib.suppress(OSError):
            st = os.stat(p)
            keys.append((st.st_dev, st.st_ino))
        for key in keys:
            if key in seen:
                raise NcnncError(f"two outputs are the same file ({seen[key]} and {p})", str(p))
        for key in keys:
            seen[key] = p


def _new_temp(p: Path) -> Path:
    folder = p.parent if str(p.parent) else Path(".")
    for _ in range(100):
        tmp = folder / f".{p.name[:150]}.ncnnc-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        _LIVE.add(tmp)  # registered before it exists: a signal right after creation still removes it
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         0o666 & ~_umask())
        except FileExistsError:
            _LIVE.discard(tmp)
            continue
        except OSError as e:
            _LIVE.discard(tmp)
            raise NcnncError(f"cannot write: {e.strerror}", str(p)) from None
        os.close(fd)
        return tmp
    raise NcnncError("cannot create a temporary file", str(p))


def _commit(temps: list[Path], paths: list[Path]) -> None:
    """Rename every temporary file into place with catchable signals held back; a journal covers SIGKILL."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    journal = None
    p = paths[0]
    try:
        if len(paths) > 1:
            journal = _new_temp(paths[0]).with_suffix(".journal")
            pairs = [[str(t.absolute()), str(p.absolute())] for t, p in zip(temps, paths)]
            tmp_journal = journal.with_suffix(".tmp")
            tmp_journal.write_text(json.dumps(pairs))
            os.replace(tmp_journal, journal)  # the journal appears whole or not at all
            _LIVE.discard(tmp_journal)
        for tmp, p in zip(temps, paths):
            os.replace(tmp, p)
            _LIVE.discard(tmp)
        if journal is not None:
            journal.unlink()
    except OSError as e:
        raise NcnncError(f"cannot write: {e.strerror or e}", str(p)) from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def atomic_outputs(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths``; rename them into place only if the block succeeds.

    All outputs appear together or none does (a model's ``.param`` and ``.bin`` belong together).
    Bad targets are user errors raised before the block runs; so are write errors in the block.
    """
    targets = [Path(p) for p in paths]
    for p in targets:
        _check_target(p)
    _same_files(targets)
    for folder in {p.parent if str(p.parent) else Path(".") for p in targets}:
        clean_stale(folder)
    temps: list[Path] = []
    try:
        for p in targets:
            temps.append(_new_temp(p))
        try:
            yield temps
        except OSError as e:
            raise NcnncError(f"cannot write: {e.strerror or e}", str(e.filename or targets[0])) from None
        _commit(temps, targets)
    finally:
        for tmp in temps:
            if tmp in _LIVE:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                _LIVE.discard(tmp)
