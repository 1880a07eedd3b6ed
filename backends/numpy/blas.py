"""One BLAS thread while the numpy backend computes, so its results do not depend on the machine.

OpenBLAS adds up a matrix product in another order when it splits the product over threads, and
whether it splits depends on the product's size and the machine's core count: with its default
thread count the backend's activations (and so calibration tables) would change from one machine to
the next.  On a busy machine its threads also wait on each other, which makes products many times
slower.  The interpreter therefore runs inside :func:`single_thread`; parallel work belongs to
processes (the calibration driver's ``thread=N``).

The thread count is set through ctypes in the OpenBLAS library numpy has loaded (its usual and
its scipy-openblas names, 32- or 64-bit integer builds).  With another BLAS, or none found, the
context manager does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator
from pathlib import Path

_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")
_lock = threading.Lock()
_depth = 0
_saved = 0


def _loaded_libraries() -> list[str]:
    """Paths of loaded shared libraries whose name mentions openblas (Linux), else numpy's bundled ones;
    numpy's own first (scipy may have loaded another OpenBLAS)."""
    found: list[str] = []
    maps = Path("/proc/self/maps")
    if maps.exists():
        with contextlib.suppress(OSError):
            for line in maps.read_text().splitlines():
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and "openblas" in Path(fields[5]).name.lower() and fields[5] not in found:
                    found.append(fields[5])
    if not found:
        import numpy

        root = Path(numpy.__file__).resolve().parent
        for folder in (root.parent / "numpy.libs", root / ".dylibs"):
            found += [str(p) for p in sorted(folder.glob("*openblas*")) if p.is_file()]
    return sorted(found, key=lambda path: "numpy" not in path)


@functools.cache
def _controls() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr] | None:
    """``(get_num_threads, set_num_threads)`` of the loaded OpenBLAS, or None."""
    import numpy  # noqa: F401 (loads numpy's BLAS first)

    for path in _loaded_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    put.restype, put.argtypes = None, [ctypes.c_int]
                    return get, put
    return None


def blas_threads() -> int | None:
    """The BLAS thread count now in force, or None when it cannot be controlled."""
    controls = _controls()
    return None if controls is None else int(controls[0]())


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the body with BLAS limited to one thread; the previous count is restored when the last
    (nested or concurrent) body ends."""
    global _depth, _saved
    controls = _controls()
    if controls is None:
        yield
        return
    get, put = controls
    with _lock:
        if _depth == 0:
            _saved = int(get())
            if _saved != 1:
                put(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved != 1:
                put(_saved)
