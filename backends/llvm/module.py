"""Assemble one LLVM module for a lowered program: a kernel per step and the model's C API.

The C API (``PREFIX`` is ``model`` unless chosen otherwise)::

    size_t PREFIX_workspace_size(void);
    void   PREFIX_run(const float *const *inputs, float *const *outputs, void *workspace, int num_threads);

``inputs``/``outputs`` hold one pointer per model input/output, each a dense float32 buffer in
ncnn's layout (``c, h, w``).  ``workspace`` is at least ``PREFIX_workspace_size()`` bytes, 64-byte
aligned; the run allocates nothing on the heap and keeps no state, so several runs may go on at once,
each with its own workspace.

Threads.  With ``num_threads > 1`` the run starts ``num_threads - 1`` POSIX threads
(``pthread_create``; joined before it returns).  Every thread walks the same list of steps: a parallel
step's kernel does the thread's share of its outer loop (:meth:`KernelContext.split`), any other step
runs on the first thread; a barrier (atomics in the workspace, ``sched_yield`` while waiting) separates
consecutive steps.  Shares only decide who computes an output element, never how, so results are
identical for every thread count.  A thread that cannot be created aborts the process (``abort``).
"""

from __future__ import annotations

from llvmlite import ir

from ncnnc.backends.llvm.irutil import I8, I32, I64, ITEMSIZE, PTR, VOID, for_range, gep, i32, i64, intrinsic
from ncnnc.backends.llvm.program import KernelContext, Program, View
from ncnnc.core.backend import Target

THREAD_ARGS = (PTR, PTR, PTR, I64, I64)
"""What a started thread receives, as five i64: inputs, outputs, workspace, its index, the thread count."""


def _base(b: ir.IRBuilder, program: Program, view: View, inputs: ir.Value, outputs: ir.Value,
          workspace: ir.Value) -> ir.Value:
    buf = program.buffer(view.buffer)
    byte_offset = view.offset * ITEMSIZE[view.dtype]
    if buf.kind == "workspace":
        return gep(b, workspace, I8, buf.offset + byte_offset)
    table = inputs if buf.kind == "input" else outputs
    base = b.load(gep(b, table, PTR, buf.index), typ=PTR)
    return gep(b, base, I8, byte_offset) if byte_offset else base


def _barrier(module: ir.Module, prefix: str) -> ir.Function:
    """``barrier(state, n)``: the last of ``n`` arriving threads resets the count and bumps the generation;
    the others wait (yielding the CPU) until the generation changes."""
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64]), f"{prefix}_barrier")
    fn.linkage = "internal"
    state, n = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    count, generation = state, gep(b, state, I8, 64)
    seen = b.load_atomic(generation, "acquire", 4, typ=I32)
    arrived = b.atomic_rmw("add", count, i32(1), "acq_rel")
    last = b.icmp_signed("==", b.sext(arrived, I64), b.sub(n, i64(1)))
    release, wait, done = (fn.append_basic_block(x) for x in ("release", "wait", "done"))
    b.cbranch(last, release, wait)
    b.position_at_end(release)
    b.atomic_rmw("xchg", count, i32(0), "monotonic")  # (llvmlite's store_atomic needs typed pointers)
    b.atomic_rmw("add", generation, i32(1), "release")
    b.branch(done)
    b.position_at_end(wait)
    now = b.load_atomic(generation, "acquire", 4, typ=I32)
    yielded = fn.append_basic_block("yield")
    b.cbranch(b.icmp_signed("!=", now, seen), done, yielded)
    b.position_at_end(yielded)
    b.call(intrinsic(module, "sched_yield", I32, []), [])
    b.branch(wait)
    b.position_at_end(done)
    b.ret_void()
    return fn


def _body(module: ir.Module, program: Program, kernels: list[ir.Function], prefix: str) -> ir.Function:
    """``body(inputs, outputs, workspace, thread, count)``: every step, with a barrier between steps."""
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, PTR, I64, I64]), f"{prefix}_body")
    fn.linkage = "internal"
    inputs, outputs, workspace, thread, count = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    barrier = _barrier(module, prefix)
    state = gep(b, workspace, I8, program.barrier_offset)
    threaded = b.icmp_signed(">", count, i64(1))
    first = b.icmp_signed("==", thread, i64(0))
    for step, kernel in zip(program.steps, kernels):
        args = [_base(b, program, v, inputs, outputs, workspace) for v in (*step.inputs, *step.outputs)]
        if step.parallel:
            b.call(kernel, [*args, thread, count])
        else:
            with b.if_then(first):
                b.call(kernel, args)
        with b.if_then(threaded):
            b.call(barrier, [state, count])
    b.ret_void()
    return fn


def _thread_main(module: ir.Module, body: ir.Function, prefix: str) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(PTR, [PTR]), f"{prefix}_thread")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    words = [b.load(gep(b, fn.args[0], I64, k), typ=I64) for k in range(len(THREAD_ARGS))]
    fields = [b.inttoptr(w, PTR) if t == PTR else w for w, t in zip(words, THREAD_ARGS)]
    b.call(body, fields)
    b.ret(ir.Constant(PTR, None))
    return fn


def _run(module: ir.Module, program: Program, body: ir.Function, prefix: str) -> ir.Function:
    run = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, PTR, I32]), f"{prefix}_run")
    run.attributes.add("nounwind")
    inputs, outputs, workspace, requested = run.args
    for arg, name in zip(run.args, ("inputs", "outputs", "workspace", "num_threads")):
        arg.name = name
    b = ir.IRBuilder(run.append_basic_block("entry"))
    count = b.sext(b.select(b.icmp_signed("<", requested, i32(1)), i32(1), requested), I64)
    with b.if_else(b.icmp_signed("==", count, i64(1))) as (single, multi):
        with single:
            b.call(body, [inputs, outputs, workspace, i64(0), i64(1)])
        with multi:
            state = gep(b, workspace, I8, program.barrier_offset)
            b.store(i32(0), state)
            b.store(i32(0), gep(b, state, I8, 64))
            args = b.alloca(I64, size=b.mul(count, i64(len(THREAD_ARGS))), name="args")
            ids = b.alloca(I64, size=count, name="ids")
            create = intrinsic(module, "pthread_create", I32, [PTR, PTR, PTR, PTR])
            join = intrinsic(module, "pthread_join", I32, [I64, PTR])
            abort = intrinsic(module, "abort", VOID, [])
            entry = _thread_main(module, body, prefix)
            with for_range(b, 1, count, name="t") as t:
                first_field = b.mul(t, i64(len(THREAD_ARGS)))
                for k, value in enumerate((inputs, outputs, workspace, t, count)):
                    word = b.ptrtoint(value, I64) if THREAD_ARGS[k] == PTR else value
                    b.store(word, gep(b, args, I64, b.add(first_field, i64(k))))
                slot = gep(b, args, I64, first_field)
                status = b.call(create, [gep(b, ids, I64, t), ir.Constant(PTR, None), entry, slot])
                with b.if_then(b.icmp_signed("!=", status, i32(0))):
                    b.call(abort, [])
            b.call(body, [inputs, outputs, workspace, i64(0), count])
            with for_range(b, 1, count, name="j") as t:
                b.call(join, [b.load(gep(b, ids, I64, t), typ=I64), ir.Constant(PTR, None)])
    b.ret_void()
    return run


def build_module(program: Program, target: Target, prefix: str = "model") -> ir.Module:
    """The module: every step's kernel, ``PREFIX_run`` calling them in order, ``PREFIX_workspace_size``."""
    module = ir.Module(name=prefix)
    module.triple = target.triple
    kernels = []
    for step in program.steps:
        ctx = KernelContext(module, target, f"{prefix}_{step.name}", step)
        kernels.append(step.emit(ctx))
    size_fn = ir.Function(module, ir.FunctionType(I64, []), f"{prefix}_workspace_size")
    ir.IRBuilder(size_fn.append_basic_block("entry")).ret(i64(program.workspace_size))
    _run(module, program, _body(module, program, kernels, prefix), prefix)
    return module
