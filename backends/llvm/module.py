"""Assemble one LLVM module for a lowered program: a kernel per step and the model's C API.

The C API (``PREFIX`` is ``model`` unless chosen otherwise)::

    size_t PREFIX_workspace_size(void);
    void   PREFIX_run(const float *const *inputs, float *const *outputs, void *workspace);

``inputs``/``outputs`` hold one pointer per model input/output, each a dense float32 buffer in
ncnn's layout (``c, h, w``).  ``workspace`` is at least ``PREFIX_workspace_size()`` bytes, 64-byte
aligned; the run allocates nothing and keeps no state, so threads may run the model at once, each
with its own workspace.
"""

from __future__ import annotations

from llvmlite import ir

from ncnnc.backends.llvm.irutil import I8, I64, ITEMSIZE, PTR, VOID, gep, i64
from ncnnc.backends.llvm.program import KernelContext, Program, View
from ncnnc.core.backend import Target


def _base(b: ir.IRBuilder, program: Program, view: View, inputs: ir.Value, outputs: ir.Value,
          workspace: ir.Value) -> ir.Value:
    buf = program.buffer(view.buffer)
    byte_offset = view.offset * ITEMSIZE[view.dtype]
    if buf.kind == "workspace":
        return gep(b, workspace, I8, buf.offset + byte_offset)
    table = inputs if buf.kind == "input" else outputs
    base = b.load(gep(b, table, PTR, buf.index), typ=PTR)
    return gep(b, base, I8, byte_offset) if byte_offset else base


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
    run = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, PTR]), f"{prefix}_run")
    run.attributes.add("nounwind")
    inputs, outputs, workspace = run.args
    for arg, name in zip(run.args, ("inputs", "outputs", "workspace")):
        arg.name = name
    b = ir.IRBuilder(run.append_basic_block("entry"))
    for step, fn in zip(program.steps, kernels):
        args = [_base(b, program, v, inputs, outputs, workspace) for v in (*step.inputs, *step.outputs)]
        b.call(fn, args)
    b.ret_void()
    return module
