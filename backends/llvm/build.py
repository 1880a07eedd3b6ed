"""From a graph to object code: lower, assemble, optimize, emit — with an on-disk cache.

:func:`build` returns a :class:`Built`: the object file's bytes plus what a caller needs to drive it
(input/output names and shapes, workspace size, symbol prefix).  Building is deterministic, so the
result is cached under a content hash of the graph (params and weights), the target, the prefix and
the backend's own source; a second build of the same model reads the cached object back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ncnnc.backends.llvm.targets import resolve
from ncnnc.core.backend import Target
from ncnnc.core.ir import Graph

Shape = tuple[int, ...]


@dataclass
class Built:
    """A compiled model: object code and its interface."""

    target: str
    triple: str
    prefix: str
    workspace_size: int
    inputs: list[tuple[str, Shape]]
    outputs: list[tuple[str, Shape]]
    object_code: bytes = b""
    assembly: str | None = None
    llvm_ir: str | None = None
    cached: bool = False
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)

    def meta(self) -> dict:
        """The JSON-able interface (no code)."""
        d = asdict(self)
        for key in ("object_code", "assembly", "llvm_ir", "cached", "seconds"):
            d.pop(key)
        return d


def cache_dir() -> Path:
    """``$NCNNC_CACHE_DIR``, else ``$XDG_CACHE_HOME/ncnnc/llvm``, else ``~/.cache/ncnnc/llvm``."""
    if os.environ.get("NCNNC_CACHE_DIR"):
        return Path(os.environ["NCNNC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ncnnc" / "llvm"


_NOT_CODEGEN = ("jit.py", "aot.py", "native.py", "__init__.py")
"""Backend modules that do not change the object code (left out of the cache key)."""

_CODEGEN_ELSEWHERE = ("numpy/int8_ops.py", "numpy/cpu_family.py")
"""Modules outside the backend whose values the code bakes in (the int8 dequantization scales)."""


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path.name in _NOT_CODEGEN:
            continue
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    for name in _CODEGEN_ELSEWHERE:
        h.update(name.encode())
        h.update((root.parent / name).read_bytes())
    return h.hexdigest()


def graph_key(graph: Graph, target: Target, prefix: str, input_shapes: dict | None) -> str:
    """The cache key: sha256 of ncnnc's version, the backend source, target, prefix, outputs, params and
    weights; for an x86 target also this machine's CPU, whose reciprocal estimates the code may bake in
    (:mod:`~ncnnc.backends.numpy.cpu_family`)."""
    import llvmlite.binding as llvm

    from ncnnc import __version__
    from ncnnc.backends.ncnn_writer import bin_bytes, param_text
    from ncnnc.backends.numpy.cpu_family import triple_family

    compiling_cpu = llvm.get_host_cpu_name() if triple_family(target.triple) == "x86" else ""
    h = hashlib.sha256()
    for part in (__version__, _source_digest(), compiling_cpu, target.name, target.triple, target.cpu,
                 target.features, json.dumps(target.options, sort_keys=True, default=str), prefix,
                 json.dumps(sorted((input_shapes or {}).items())), json.dumps(graph.outputs), param_text(graph)):
        h.update(str(part).encode())
        h.update(b"\0")
    h.update(bin_bytes(graph))
    return h.hexdigest()


def _read_cache(key: str) -> Built | None:
    folder = cache_dir()
    meta_path, obj_path = folder / f"{key}.json", folder / f"{key}.o"
    try:
        meta = json.loads(meta_path.read_text())
        code = obj_path.read_bytes()
    except (OSError, ValueError):
        return None
    meta["inputs"] = [(n, tuple(s)) for n, s in meta["inputs"]]
    meta["outputs"] = [(n, tuple(s)) for n, s in meta["outputs"]]
    return Built(**meta, object_code=code, cached=True)


def _write_cache(key: str, built: Built) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, data in ((".o", built.object_code), (".json", json.dumps(built.meta()).encode())):
            tmp = folder / f".{key}{suffix}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / f"{key}{suffix}")
    except OSError:  # a read-only home is no reason to fail a build
        pass


def build(graph: Graph, target: Target | str = "host", prefix: str = "model", *,
          input_shapes: dict[str, Shape] | None = None, assembly: bool = False, llvm_ir: bool = False,
          use_cache: bool = True) -> Built:
    """Compile a graph for a target; cached unless ``use_cache`` is False or text outputs are asked for."""
    from ncnnc.backends.llvm.codegen import emit_assembly, emit_object, optimize
    from ncnnc.backends.llvm.lower import lower
    from ncnnc.backends.llvm.module import build_module

    target = resolve(target)
    start = time.perf_counter()
    key = graph_key(graph, target, prefix, input_shapes) if use_cache else ""
    if key and not (assembly or llvm_ir):
        hit = _read_cache(key)
        if hit is not None:
            hit.seconds = time.perf_counter() - start
            return hit
    program = lower(graph, target, input_shapes)
    module = build_module(program, target, prefix)
    ref = optimize(module, target)
    text = str(ref) if llvm_ir else None
    built = Built(target.name, target.triple, prefix, program.workspace_size, program.inputs, program.outputs,
                  emit_object(ref, target), emit_assembly(ref, target) if assembly else None, text,
                  steps=[s.name for s in program.steps])
    built.seconds = time.perf_counter() - start
    if key:
        _write_cache(key, built)
    return built
