"""Atomic output: write to a temporary file beside the target, then rename, so a failure leaves
nothing half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_outputs(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths``; rename them into place only if the block succeeds.

    All outputs appear together or none does (a model's ``.param`` and ``.bin`` belong together).
    """
    temps: list[Path] = []
    try:
        for p in paths:
            p = Path(p)
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
            os.close(fd)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
            temps.append(Path(tmp))
        yield temps
        for tmp, p in zip(temps, paths):
            os.replace(tmp, p)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
