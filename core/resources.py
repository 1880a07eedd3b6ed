"""The memory limit: sizes implied by shapes are estimated before anything that big is allocated.

The limit is ``--max-memory SIZE`` on the command line (``NCNNC_MAX_MEMORY`` in the environment,
:func:`set_memory_limit` from Python); by default :data:`DEFAULT_FRACTION` of the memory this process
may use (:func:`machine_memory`).
A shape that needs more (a ``shape=`` option, an image whose header claims 10^10 pixels, an Input or
Interp layer with huge sizes) is refused with one line naming the option or layer and the size.
"""

from __future__ import annotations

import math
import os
import re

from ncnnc.core.errors import NcnncError

DEFAULT_FRACTION = 0.5
"""Share of the machine's physical memory allowed by default."""

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_limit: int | None = None


class ResourceError(NcnncError):
    """Something would need more memory than the limit allows."""


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``1.5GB``, ``1000000`` -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise NcnncError(f"--max-memory {text}: expected a size such as 4G, 512M or 1000000")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not math.isfinite(value) or value < 1:
        raise NcnncError(f"--max-memory {text}: expected a positive size")
    return int(value)


def machine_memory() -> int:
    """The memory this process may use, in bytes: physical memory, lowered by an address-space rlimit
    and a cgroup (v2) memory limit when they are smaller (4 GiB when the system does not say)."""
    try:
        sizes = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    except (ValueError, OSError, AttributeError):
        sizes = [4 * 2**30]
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            sizes.append(soft)
    except (ImportError, OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text.isdigit():
            sizes.append(int(text))
    except OSError:
        pass
    return min(sizes)


def set_memory_limit(limit: int | str | None) -> None:
    """Set the limit in bytes (or a size text); None restores the default."""
    global _limit
    _limit = parse_size(limit) if isinstance(limit, str) else limit


def memory_limit() -> int:
    """The limit in bytes: the one set, else ``$NCNNC_MAX_MEMORY``, else a share of the machine's memory."""
    if _limit is not None:
        return _limit
    env = os.environ.get("NCNNC_MAX_MEMORY")
    if env:
        return parse_size(env)
    return int(machine_memory() * DEFAULT_FRACTION)


def format_size(n: float) -> str:
    """Bytes as a short human-readable size (``112.0 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_bytes(nbytes: int, what: str, path: str | None = None, where: str | None = None) -> None:
    """Raise :class:`ResourceError` if ``what`` would need more than the memory limit."""
    limit = memory_limit()
    if nbytes > limit:
        raise ResourceError(f"{what} needs {format_size(nbytes)}, more than the memory limit {format_size(limit)} "
                            "(--max-memory SIZE to change it)", path, where)


def check_shape(shape: tuple[int, ...] | list[int], what: str, itemsize: int = 4, path: str | None = None,
                where: str | None = None) -> None:
    """:func:`check_bytes` for an array of ``shape`` (``itemsize`` bytes per element)."""
    check_bytes(math.prod(max(int(d), 0) for d in shape) * itemsize, f"{what} of shape {list(shape)}", path, where)
