"""The optimizer's Python API: ``ncnnc.optimize(graph, ...)``, ncnnoptimize as registered passes.

>>> from ncnnc.frontends.ncnn import load
>>> graph = load("squeezenet_v1.1.param", "squeezenet_v1.1.bin")        # doctest: +SKIP
>>> report = optimize(graph, storage="fp16")                              # doctest: +SKIP
>>> print(report.summary())                                               # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph
from ncnnc.core.passes import DEFAULT_LEVEL, Pass, PassManager, PassReport

STORAGES = ("fp32", "fp16")


def storage_from_flag(flag: int | str | None) -> str | None:
    """ncnnoptimize's last argument as a storage: ``1`` or ``65536`` -> fp16, any other integer -> fp32.

    ``None`` keeps each weight's storage; ``"fp32"``/``"fp16"`` are accepted as they are.
    """
    if flag is None or flag in STORAGES:
        return flag  # type: ignore[return-value]
    try:
        value = int(flag)
    except (TypeError, ValueError):
        raise NcnncError(f"storage flag {flag!r} is not an integer (0 = fp32, 1 or 65536 = fp16)") from None
    return "fp16" if value in (1, 65536) else "fp32"


@dataclass
class OptimizeReport:
    """What :func:`optimize` did: the pass report plus sizes before and after."""

    passes: PassReport
    layers_before: int
    layers_after: int
    bin_bytes_before: int | None
    bin_bytes_after: int | None
    storage: str | None

    def summary(self) -> str:
        """One closing line: layers and ``.bin`` bytes before -> after, time taken."""
        text = f"layers {self.layers_before} -> {self.layers_after}"
        if self.bin_bytes_before is not None and self.bin_bytes_after is not None:
            text += f", .bin {self.bin_bytes_before} -> {self.bin_bytes_after} bytes"
        if self.storage:
            text += f" ({self.storage} weights)"
        return text + f", {self.passes.seconds * 1000:.0f} ms"


def _bin_size(graph: Graph) -> int | None:
    from ncnnc.backends.ncnn_writer import bin_bytes

    try:
        return len(bin_bytes(graph))
    except NcnncError:
        return None


def registered_passes() -> list[Pass]:
    """Every pass registered through the ``ncnnc_passes`` hook (built-ins and plugins)."""
    from ncnnc.core.registry import registry

    return [reg.item for reg in registry().all("passes")]


def optimize(graph: Graph, level: int = DEFAULT_LEVEL, disable: Iterable[str] = (), only: Iterable[str] | None = None,
             storage: int | str | None = None, validate: bool | None = None, passes: Iterable[Pass] | None = None,
             log: Callable[[str], None] | None = None) -> OptimizeReport:
    """Optimize ``graph`` in place like ``ncnnoptimize``; return what changed.

    ``level``: 1 runs only rewrites that keep every value bit-exact, 2 (default) also folds
    constants into weights.  ``disable``/``only``: pass names.  ``storage``: ``"fp32"``/``"fp16"``
    or ncnnoptimize's flag (0 fp32, 1 or 65536 fp16), None keeps each weight's storage.
    ``validate`` checks the graph after every pass.  ``passes`` replaces the registered passes,
    ``log`` receives each change as it happens.
    """
    target = storage_from_flag(storage)
    layers_before, bytes_before = len(graph), _bin_size(graph)
    manager = PassManager(registered_passes() if passes is None else passes, level=level, disable=disable,
                          only=only, validate=validate, log=log)
    report = manager.run(graph)
    if target is not None:
        from ncnnc.backends.ncnn_writer import convert_storage

        convert_storage(graph, target)
    return OptimizeReport(report, layers_before, len(graph), bytes_before, _bin_size(graph), target)
