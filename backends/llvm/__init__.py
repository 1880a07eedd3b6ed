"""The LLVM backend: int8 and fp32 models compiled to native code with llvmlite.

Pipeline: :mod:`.lower` (graph -> steps over views of buffers, one kernel family per layer) ->
:mod:`.memplan` (static workspace plan by liveness) -> :mod:`.module` (one LLVM module: a kernel per
step, the model's C entry points) -> :mod:`.codegen` (optimize, emit an object for the target) ->
:mod:`.jit` (run it in this process) or :mod:`.aot` (``model.o`` + ``model.h`` for an app).
Targets are plugin items (:mod:`.targets`); see ``docs/llvm.md``.
"""

from __future__ import annotations

from ncnnc.backends.llvm.build import Built, build
from ncnnc.backends.llvm.jit import CompiledModel, jit
from ncnnc.backends.llvm.targets import BUILTIN_TARGETS
from ncnnc.core.backend import Backend, Target
from ncnnc.core.hookspecs import hookimpl

__all__ = ["Built", "CompiledModel", "build", "jit"]


@hookimpl
def ncnnc_backends() -> list[Backend]:
    """The LLVM code generator."""
    return [Backend("llvm", "native int8/fp32 code via llvmlite: host JIT, x86-64 and armv8 objects",
                    "codegen", build)]


@hookimpl
def ncnnc_targets() -> list[Target]:
    """The built-in targets."""
    return list(BUILTIN_TARGETS)
