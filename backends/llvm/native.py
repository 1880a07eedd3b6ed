"""Run a compiled object the way an application does: linked with a C driver, in its own process.

:func:`run_native` links a :class:`~ncnnc.backends.llvm.build.Built` object with
``driver/ncnnc_driver.c`` and runs every input set in one process:

- code for this machine's architecture links with the host C compiler (``cc``) and runs directly,
  once :func:`~ncnnc.backends.llvm.targets.check_native` agrees this CPU has every feature it needs;
- aarch64 code on an x86-64 machine links statically with Debian's ``aarch64-linux-gnu-gcc`` and runs
  under ``qemu-aarch64 -cpu max`` (which emulates every extension the armv8 targets may use).

Inputs go to the driver as raw float32 files, outputs come back the same way.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ncnnc.backends.llvm.aot import header_text
from ncnnc.backends.llvm.build import Built
from ncnnc.core.backend import Target
from ncnnc.core.errors import NcnncError

DRIVER = Path(__file__).parent / "driver" / "ncnnc_driver.c"
"""The C driver linked with the object (shipped as package data)."""

CROSS_PACKAGES = "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
"""What to install for aarch64 targets on an x86-64 Debian/Ubuntu machine."""

TIMEOUT = 600.0
"""Seconds a driver run may take (qemu is slow on big models)."""


@dataclass(frozen=True)
class Toolchain:
    """How to link and run code for one architecture: compiler command, extra flags, runner prefix."""

    arch: str
    cc: list[str]
    flags: list[str]
    runner: list[str]


def _host_arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def _which(name: str, path: str | None) -> str | None:
    return shutil.which(name, path=path)


def toolchain(triple: str, path: str | None = None) -> Toolchain:
    """The toolchain for code of ``triple`` on this machine (``path``: the ``PATH`` to search, default
    the environment's); a one-line :class:`NcnncError` saying what to install when a tool is missing."""
    arch = triple.split("-")[0]
    host = _host_arch()
    if arch == host:
        cc = _which("cc", path) or _which("gcc", path)
        if cc is None:
            raise NcnncError(f"no C compiler (cc) to link the {arch} object: apt-get install gcc")
        return Toolchain(arch, [cc], [], [])
    if arch == "aarch64" and host == "x86_64":
        cc = _which("aarch64-linux-gnu-gcc", path)
        qemu = _which("qemu-aarch64", path)
        if cc is None or qemu is None:
            missing = " and ".join(n for n, p in (("aarch64-linux-gnu-gcc", cc), ("qemu-aarch64", qemu)) if p is None)
            raise NcnncError(f"running aarch64 code here needs {missing}: {CROSS_PACKAGES}")
        return Toolchain(arch, [cc], ["-static"], [qemu, "-cpu", "max"])
    raise NcnncError(f"cannot run {arch} code on this {host} machine")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no output)"])[0]


def _check_inputs(built: Built, inputs: Sequence[Mapping[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """Each input set as float32 arrays in the model's input order, shapes checked."""
    names = [n for n, _ in built.inputs]
    result = []
    for k, given in enumerate(inputs):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise NcnncError(f"input set {k}: no model input named {unknown[0]!r} (inputs: {', '.join(names)})")
        arrays = []
        for name, shape in built.inputs:
            if name not in given:
                raise NcnncError(f"input set {k}: input {name!r} was not given")
            a = np.ascontiguousarray(given[name], np.float32)
            if a.shape != tuple(shape):
                raise NcnncError(f"input set {k}: input {name!r} has shape {a.shape}, the model was compiled "
                                 f"for {tuple(shape)}")
            arrays.append(a)
        result.append(arrays)
    return result


def _target_of(built: Built, target: Target | str | None) -> Target | None:
    from ncnnc.backends.llvm.targets import resolve

    if isinstance(target, Target):
        return target
    try:
        return resolve(target or built.target)
    except NcnncError:  # a plugin target no longer registered: only the triple is known
        return None


def run_native(built: Built, inputs: Sequence[Mapping[str, np.ndarray]], *, target: Target | str | None = None,
               path: str | None = None, timeout: float = TIMEOUT, threads: int = 1) -> list[dict[str, np.ndarray]]:
    """Link ``built``'s object with the C driver and run it once over every input set; returns the outputs.

    ``inputs`` holds one ``{input name: array of the input's shape}`` per image.  ``target`` (default:
    the build's, looked up by name) is checked to be runnable here when it is this machine's
    architecture; ``path`` replaces ``$PATH`` when looking up the tools; ``threads`` threads share each
    run (the driver's ``$NCNNC_THREADS``).
    """
    from ncnnc.backends.llvm.targets import check_native

    sets = _check_inputs(built, inputs)
    tools = toolchain(built.triple, path)
    resolved = _target_of(built, target)
    if not tools.runner and resolved is not None:
        check_native(resolved)
    with tempfile.TemporaryDirectory(prefix="ncnnc-native-") as tmp:
        folder = Path(tmp)
        (folder / "model.o").write_bytes(built.object_code)
        header = f"{built.prefix}.h"
        (folder / header).write_text(header_text(built))
        exe = folder / "driver"
        cmd = [*tools.cc, "-O2", "-std=c11", *tools.flags, f"-I{folder}", f"-DNCNNC_PREFIX={built.prefix}",
               f"-DNCNNC_PREFIX_UPPER={built.prefix.upper()}", f'-DNCNNC_HEADER="{header}"', str(DRIVER),
               str(folder / "model.o"), "-o", str(exe), "-lm", "-pthread"]
        env = dict(os.environ, PATH=path) if path is not None else None
        link = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if link.returncode != 0:
            raise NcnncError(f"linking the {built.target} object failed ({Path(tools.cc[0]).name}): "
                             f"{_first_line(link.stderr)}")
        in_files = [folder / f"in{i}.raw" for i in range(len(built.inputs))]
        out_files = [folder / f"out{j}.raw" for j in range(len(built.outputs))]
        for i, name in enumerate(in_files):
            with open(name, "wb") as f:
                for arrays in sets:
                    f.write(arrays[i].tobytes())
        run_env = dict(env if env is not None else os.environ, NCNNC_THREADS=str(threads))
        try:
            proc = subprocess.run([*tools.runner, str(exe), str(len(sets)), *map(str, in_files), *map(str, out_files)],
                                  capture_output=True, text=True, env=run_env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NcnncError(f"the {built.target} driver did not finish within {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise NcnncError(f"the {built.target} driver failed (status {proc.returncode}): "
                             f"{_first_line(proc.stderr)}")
        results: list[dict[str, np.ndarray]] = [{} for _ in sets]
        for (name, shape), out in zip(built.outputs, out_files):
            data = np.fromfile(out, np.float32)
            per = int(np.prod(shape, dtype=np.int64))
            if data.size != per * len(sets):
                raise NcnncError(f"the {built.target} driver wrote {data.size} floats for {name!r}, "
                                 f"expected {per * len(sets)}")
            for k, chunk in enumerate(data.reshape(len(sets), *shape) if sets else []):
                results[k][name] = chunk.copy()
        return results
