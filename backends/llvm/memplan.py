"""The static memory plan: every workspace buffer gets a byte offset; buffers whose lifetimes do not
overlap share memory, so a run allocates nothing and the workspace stays small.

A buffer lives from the first step that touches it to the last (inclusive).  Buffers are placed in
order of first use, each at the lowest aligned offset where it overlaps no buffer alive at the same
time (first fit, like TVM's graph memory planner).
"""

from __future__ import annotations

from ncnnc.backends.llvm.program import Program

ALIGN = 64
BARRIER_BYTES = 128
"""The threads' barrier state at the end of the workspace: arrival count and generation, a cache line each."""


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def lifetimes(program: Program) -> dict[int, tuple[int, int]]:
    """``buffer id -> (first step, last step)`` for every workspace buffer a step touches."""
    span: dict[int, tuple[int, int]] = {}
    for index, step in enumerate(program.steps):
        for view in (*step.inputs, *step.outputs):
            first, last = span.get(view.buffer, (index, index))
            span[view.buffer] = (min(first, index), max(last, index))
    return {b: s for b, s in span.items() if program.buffers[b].kind == "workspace"}


def plan_memory(program: Program) -> int:
    """Assign workspace offsets; sets and returns ``program.workspace_size`` (bytes)."""
    spans = lifetimes(program)
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    size = 0
    for buf_id in sorted(spans, key=lambda b: (spans[b][0], -program.buffers[b].nbytes)):
        first, last = spans[buf_id]
        nbytes = _align(program.buffers[buf_id].nbytes)
        busy = sorted((o, e) for o, e, f, l in placed if not (l < first or f > last))
        offset = 0
        for o, e in busy:
            if offset + nbytes <= o:
                break
            offset = max(offset, e)
        program.buffers[buf_id].offset = offset
        placed.append((offset, offset + nbytes, first, last))
        size = max(size, offset + nbytes)
    program.barrier_offset = size
    program.workspace_size = size + BARRIER_BYTES
    return program.workspace_size
