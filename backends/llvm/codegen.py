"""LLVM's side: target machines, optimization, object code and assembly for a module."""

from __future__ import annotations

import functools

from llvmlite import ir

from ncnnc.core.backend import Target
from ncnnc.core.errors import NcnncError


@functools.lru_cache(maxsize=1)
def _init_llvm() -> None:
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


def target_machine(target: Target):
    """An llvmlite ``TargetMachine`` for a resolved target (position-independent code, -O3)."""
    import llvmlite.binding as llvm

    _init_llvm()
    try:
        tgt = llvm.Target.from_triple(target.triple)
    except RuntimeError as e:
        raise NcnncError(f"target {target.name}: LLVM has no backend for {target.triple} ({e})") from None
    return tgt.create_target_machine(cpu=target.cpu, features=target.features, opt=3, reloc="pic",
                                     codemodel="default")


def optimize(module: ir.Module, target: Target):
    """Parse and verify the module, then run LLVM's -O3 pipeline for the target; returns the ModuleRef."""
    import llvmlite.binding as llvm

    tm = target_machine(target)
    ref = llvm.parse_assembly(str(module))
    ref.triple = target.triple
    ref.data_layout = str(tm.target_data)
    ref.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = False  # kernels unroll their own register tiles; LLVM's unroller only costs time
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(ref, pb)
    return ref


def emit_object(ref, target: Target) -> bytes:
    """Relocatable object code for the target."""
    return target_machine(target).emit_object(ref)


def emit_assembly(ref, target: Target) -> str:
    """Assembly text for the target."""
    return target_machine(target).emit_assembly(ref)
