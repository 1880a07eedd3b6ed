"""Built-in code generation targets, and what each one lets the kernels use.

A :class:`~ncnnc.core.backend.Target` names an LLVM triple, a CPU and its features; its ``options``
say which kernel strategies it enables:

- ``vector_bits``: the native vector width the kernels tile for (512, 256 or 128);
- ``int8_dot``: the int8 dot-product family: ``avx512vnni`` (``vpdpbusd``, u8 x s8 -> s32),
  ``avx2`` (``vpmaddwd`` on int16-widened operands), ``sdot`` (armv8.2 dotprod), ``smmla`` (i8mm),
  ``neon`` or ``generic`` (widening multiply-add that LLVM selects for any target);
- ``requires``: features the running CPU must have to execute the code (checked before a JIT or a
  native run: LLVM would otherwise emit instructions the CPU lacks and the process dies).

``host`` is resolved when used: llvmlite reports the CPU name and features of this machine.
"""

from __future__ import annotations

import functools
import platform

from ncnnc.core.backend import Target
from ncnnc.core.errors import NcnncError

X86_TRIPLE = "x86_64-unknown-linux-gnu"
ARM_TRIPLE = "aarch64-unknown-linux-gnu"

BUILTIN_TARGETS = (
    Target("host", "this machine's CPU, detected with llvmlite", "", "host", "",
           {"vector_bits": 0, "int8_dot": "auto", "requires": ()}),
    Target("x86-64-v3", "x86-64 with AVX2 and FMA (Haswell and later, Zen)", X86_TRIPLE, "x86-64-v3", "+avx2,+fma",
           {"vector_bits": 256, "int8_dot": "avx2", "requires": ("avx2", "fma")}),
    Target("x86-64-v4-vnni", "x86-64 with AVX-512 and VNNI (Cascade Lake and later, Zen 4)", X86_TRIPLE,
           "x86-64-v4", "+avx512vnni",
           {"vector_bits": 512, "int8_dot": "avx512vnni",
            "requires": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni")}),
    Target("armv8", "aarch64 with NEON, tuned for a conservative core (Cortex-A53)", ARM_TRIPLE, "cortex-a53",
           "+neon", {"vector_bits": 128, "int8_dot": "neon", "requires": ("neon",)}),
    Target("armv8.2-dotprod", "aarch64 with the int8 dot product (sdot; Cortex-A55/A76 and later)", ARM_TRIPLE,
           "cortex-a76", "+neon,+dotprod", {"vector_bits": 128, "int8_dot": "sdot", "requires": ("neon", "dotprod")}),
    Target("armv8.6-i8mm", "aarch64 with int8 matrix multiply (smmla; Cortex-A710, Neoverse N2)", ARM_TRIPLE,
           "neoverse-n2", "+neon,+dotprod,+i8mm",
           {"vector_bits": 128, "int8_dot": "smmla", "requires": ("neon", "dotprod", "i8mm")}),
)
"""The targets ``ncnnc plugins`` lists under ``targets`` from ncnnc itself."""


@functools.lru_cache(maxsize=1)
def host_features() -> frozenset[str]:
    """The features of this machine's CPU, as LLVM names them (``avx2``, ``avx512vnni``, ``neon``...)."""
    import llvmlite.binding as llvm

    try:
        feats = llvm.get_host_cpu_features()
    except RuntimeError:  # LLVM cannot list them on this OS
        return frozenset()
    names = {name for name, on in feats.items() if on}
    if platform.machine() in ("aarch64", "arm64"):
        names.add("neon")
    return frozenset(names)


def _host_strategy(features: frozenset[str], arm: bool) -> tuple[int, str]:
    if arm:
        if "i8mm" in features:
            return 128, "smmla"
        return 128, "sdot" if "dotprod" in features else "neon"
    if {"avx512f", "avx512bw", "avx512vnni"} <= features:
        return 512, "avx512vnni"
    if {"avx512f", "avx512bw"} <= features:
        return 512, "generic"
    if "avx2" in features:
        return 256, "avx2"
    return 128, "generic"


@functools.lru_cache(maxsize=1)
def host_target() -> Target:
    """The ``host`` target resolved: this process's triple, CPU name and features."""
    import llvmlite.binding as llvm

    features = host_features()
    triple = llvm.get_process_triple()
    bits, dot = _host_strategy(features, triple.startswith(("aarch64", "arm64")))
    flat = llvm.get_host_cpu_features().flatten()
    return Target("host", f"this machine ({llvm.get_host_cpu_name()})", triple, llvm.get_host_cpu_name(), flat,
                  {"vector_bits": bits, "int8_dot": dot, "requires": ()})


def resolve(target: Target | str) -> Target:
    """A concrete target: ``host`` resolved, a name looked up among every registered target."""
    if isinstance(target, str):
        from ncnnc.core.registry import registry

        names = registry().names("targets")
        if target not in names:
            raise NcnncError(f"unknown target {target!r} (known targets: {', '.join(names)})")
        target = registry().get("targets", target)
    if target.cpu == "host" and not target.triple:
        return host_target()
    return target


def is_native(target: Target) -> bool:
    """True when this machine can execute code for ``target`` (same architecture, every required feature)."""
    import llvmlite.binding as llvm

    arch = llvm.get_process_triple().split("-")[0]
    if target.triple.split("-")[0] != arch:
        return False
    return set(target.options.get("requires", ())) <= host_features()


def check_native(target: Target) -> None:
    """A user error when this machine cannot run ``target``'s code (instead of a crash)."""
    if not is_native(target):
        missing = sorted(set(target.options.get("requires", ())) - host_features())
        why = f"this CPU lacks {', '.join(missing)}" if missing else f"this machine is not {target.triple}"
        raise NcnncError(f"target {target.name} cannot run here: {why}")
