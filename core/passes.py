"""Graph passes and the pass manager that runs them until the graph stops changing.

A :class:`Pass` is a named rewrite of a :class:`~ncnnc.core.ir.Graph` with an optimization level
(like TVM's passes): ``run(graph)`` changes the graph in place and returns one human-readable line
per change (an empty list means "nothing to do").  Passes are plugins: built-in ones and outside
ones register through the ``ncnnc_passes`` hook and are found in :func:`ncnnc.core.registry.registry`.

:class:`PassManager` runs the enabled passes in ``order`` (ties keep registration order), again
and again until a whole round changes nothing.  While it runs, the graph's outputs are frozen
(``graph.explicit_outputs``), so a blob that a rewrite leaves unread is dead, not a new output.
A pass with ``needs_shapes`` gets fresh ``graph.shapes`` (empty when inference is impossible, e.g.
an ``Input`` without shape: such a pass must then leave shape-dependent cases alone).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ncnnc.core.errors import GraphError, NcnncError
from ncnnc.core.ir import Graph

LEVEL_EXACT = 1
"""Level of passes that only remove or merge layers without changing any arithmetic."""
LEVEL_FOLD = 2
"""Level of passes that fold constants into weights (results change by float rounding only)."""
DEFAULT_LEVEL = LEVEL_FOLD
"""What ``ncnnc optimize`` runs by default: everything ``ncnnoptimize`` does."""

ORDER_USER = 1000
"""Default order of a pass: after the built-in fusions, before the final clean-up passes."""

DEAD_PRODUCERS = ("MemoryData", "Split")
"""Layer types whose unread outputs are dead code rather than graph outputs (as in ncnnoptimize)."""


class Pass:
    """A named graph rewrite.

    Subclass and override :meth:`run`, or wrap a function with :func:`graph_pass`.  ``level`` is
    the lowest optimization level that enables the pass, ``order`` sorts passes within a round,
    ``needs_shapes`` asks the manager to fill ``graph.shapes`` first.
    """

    name: str = ""
    description: str = ""
    level: int = LEVEL_EXACT
    order: int = ORDER_USER
    needs_shapes: bool = False

    def __init__(self, name: str | None = None, description: str | None = None, level: int | None = None,
                 order: int | None = None, needs_shapes: bool | None = None) -> None:
        for attr, value in (("name", name), ("description", description), ("level", level),
                            ("order", order), ("needs_shapes", needs_shapes)):
            if value is not None:
                setattr(self, attr, value)
        if not self.name:
            raise ValueError("a pass needs a name")

    def run(self, graph: Graph) -> list[str]:
        """Rewrite ``graph`` in place; return one line per change made."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} level={self.level} order={self.order}>"


class FunctionPass(Pass):
    """A pass whose work is a plain function ``fn(graph) -> list of change descriptions``."""

    def __init__(self, fn: Callable[[Graph], Sequence[str]], name: str, description: str = "",
                 level: int = LEVEL_EXACT, order: int = ORDER_USER, needs_shapes: bool = False) -> None:
        super().__init__(name, description or (fn.__doc__ or "").strip().split("\n")[0], level, order,
                         needs_shapes)
        self.fn = fn

    def run(self, graph: Graph) -> list[str]:
        """Call the function."""
        return list(self.fn(graph))


def graph_pass(name: str, description: str = "", level: int = LEVEL_EXACT, order: int = ORDER_USER,
               needs_shapes: bool = False) -> Callable[[Callable[[Graph], Sequence[str]]], FunctionPass]:
    """Decorator: turn ``fn(graph) -> list[str]`` into a :class:`FunctionPass`."""
    def wrap(fn: Callable[[Graph], Sequence[str]]) -> FunctionPass:
        return FunctionPass(fn, name, description, level, order, needs_shapes)
    return wrap


@dataclass
class PassRun:
    """One execution of one pass: which round, what it changed, how long it took."""

    name: str
    round: int
    changes: list[str]
    seconds: float


@dataclass
class PassReport:
    """What a :class:`PassManager` run did."""

    runs: list[PassRun] = field(default_factory=list)
    rounds: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[tuple[str, str]]:
        """Every change as ``(pass name, description)``, in the order made."""
        return [(r.name, c) for r in self.runs for c in r.changes]

    def counts(self) -> dict[str, int]:
        """Number of changes per pass name (passes that changed nothing are left out)."""
        result: dict[str, int] = {}
        for name, _ in self.changes:
            result[name] = result.get(name, 0) + 1
        return result

    def format(self, verbose: bool = False) -> str:
        """Human-readable lines: per pass counts, or (verbose) every change and each pass's time."""
        lines = []
        if verbose:
            for run in self.runs:
                if run.changes:
                    lines.append(f"round {run.round} {run.name}: {len(run.changes)} change(s) "
                                 f"in {run.seconds * 1000:.1f} ms")
                    lines += [f"    {c}" for c in run.changes]
            idle = [name for name in dict.fromkeys(r.name for r in self.runs) if name not in self.counts()]
            if idle:
                lines.append(f"nothing to do for: {', '.join(idle)}")
            lines.append(f"{self.rounds} round(s), {self.seconds * 1000:.1f} ms")
        else:
            lines += [f"{name}: {n}" for name, n in self.counts().items()]
        lines += self.notes
        return "\n".join(lines)


def _validate_default() -> bool:
    return os.environ.get("NCNNC_DEBUG", "") not in ("", "0")


class PassManager:
    """Runs enabled passes in order, round after round, until nothing changes.

    ``level`` enables passes whose level is at most it; ``disable`` removes passes by name;
    ``only`` keeps exactly the named passes (whatever their level).  ``validate`` checks the graph
    after every pass (default: when the environment variable ``NCNNC_DEBUG`` is set).  Unknown
    names are user errors listing the available passes.
    """

    def __init__(self, passes: Iterable[Pass], level: int = DEFAULT_LEVEL, disable: Iterable[str] = (),
                 only: Iterable[str] | None = None, validate: bool | None = None, max_rounds: int = 20,
                 log: Callable[[str], None] | None = None) -> None:
        self.all_passes = sorted(passes, key=lambda p: p.order)
        names = [p.name for p in self.all_passes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise NcnncError(f"two passes share the name {duplicates[0]!r}")
        disable, only = list(disable), (list(only) if only is not None else None)
        unknown = [n for n in [*disable, *(only or [])] if n not in names]
        if unknown:
            raise NcnncError(f"no pass named {unknown[0]!r} (available: {', '.join(names)})")
        if only is not None:
            chosen = [p for p in self.all_passes if p.name in only]
        else:
            chosen = [p for p in self.all_passes if p.level <= level]
        self.passes = [p for p in chosen if p.name not in disable]
        self.validate = _validate_default() if validate is None else validate
        self.max_rounds = max_rounds
        self.log = log

    def run(self, graph: Graph) -> PassReport:
        """Optimize ``graph`` in place and report what changed."""
        report = PassReport()
        start = time.perf_counter()
        implicit = graph.explicit_outputs is None
        if implicit:
            producers = graph.producers()
            graph.explicit_outputs = [b for b in graph.outputs if producers[b].type not in DEAD_PRODUCERS]
        try:
            self._rounds(graph, report)
        finally:
            if implicit:
                graph.explicit_outputs = None
            graph.shapes = {}
        report.seconds = time.perf_counter() - start
        return report

    def _rounds(self, graph: Graph, report: PassReport) -> None:
        shapes_fresh = False
        for round_no in range(1, self.max_rounds + 1):
            report.rounds = round_no
            changed_by = []
            for p in self.passes:
                if p.needs_shapes and not shapes_fresh:
                    self._infer_shapes(graph, report)
                    shapes_fresh = True
                t0 = time.perf_counter()
                changes = list(p.run(graph))
                report.runs.append(PassRun(p.name, round_no, changes, time.perf_counter() - t0))
                if changes:
                    changed_by.append(p.name)
                    shapes_fresh = False
                    if self.log:
                        for c in changes:
                            self.log(f"{p.name}: {c}")
                if self.validate:
                    try:
                        graph.validate()
                    except GraphError as e:
                        raise GraphError(f"pass {p.name} left an invalid graph: {e}") from None
            if not changed_by:
                return
        raise NcnncError(f"the passes did not settle after {self.max_rounds} rounds "
                         f"(still changing: {', '.join(changed_by)})")

    @staticmethod
    def _infer_shapes(graph: Graph, report: PassReport) -> None:
        from ncnnc.core.shapes import infer_shapes

        try:
            infer_shapes(graph)
        except Exception as e:  # a shape rule's failure must not stop the optimizer: shapes are optional
            graph.shapes = {}
            note = f"shape inference failed ({type(e).__name__}: {e}): shape-dependent rewrites skipped"
            if note not in report.notes:
                report.notes.append(note)
