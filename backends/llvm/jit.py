"""Run compiled models in this process: object code loaded into LLVM's JIT, called through ctypes.

>>> import ncnnc  # doctest: +SKIP
>>> model = ncnnc.jit(["out/model.param", "out/model.bin"])          # target="host"
>>> model({"data": image_chw})["prob"].shape                          # doctest: +SKIP
(1000,)
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ncnnc.backends.llvm.build import Built, Shape, build
from ncnnc.backends.llvm.targets import check_native, resolve
from ncnnc.core.backend import Target
from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph

_RUN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)


class CompiledModel:
    """A model compiled to native code for this machine.

    Call it with a mapping of input names to float32 arrays (each the blob's shape, or with a
    leading batch axis) or, for a one-input model, with the array itself; it returns a dict of
    output name -> array (batched like the input).  ``threads`` native threads share each forward pass
    (results are the same for any count).  Calls from several Python threads run at once: each has its
    own workspace, and the native code releases the GIL.
    """

    def __init__(self, built: Built, target: Target, threads: int = 1) -> None:
        import llvmlite.binding as llvm

        from ncnnc.backends.llvm.codegen import target_machine

        self.built = built
        self.target = target
        self.threads = threads
        self.inputs: list[tuple[str, Shape]] = list(built.inputs)
        self.outputs: list[tuple[str, Shape]] = list(built.outputs)
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine(target))
        self._engine.add_object_file(llvm.ObjectFileRef.from_data(built.object_code))
        self._engine.finalize_object()
        address = self._engine.get_function_address(f"{built.prefix}_run")
        if not address:
            raise NcnncError(f"compiled object has no {built.prefix}_run")
        self._run = _RUN(address)
        self._local = threading.local()

    def _workspace(self) -> np.ndarray:
        ws = getattr(self._local, "ws", None)
        if ws is None:
            raw = np.zeros(self.built.workspace_size + 64, np.uint8)
            start = (-raw.ctypes.data) % 64
            ws = raw[start: start + self.built.workspace_size]
            self._local.ws = ws
        return ws

    def run_one(self, arrays: Sequence[np.ndarray], threads: int | None = None) -> list[np.ndarray]:
        """One forward pass: one contiguous float32 array per input, in order; returns the outputs.
        ``threads`` (default: the model's ``threads``) native threads share the work."""
        outs = [np.empty(shape, np.float32) for _, shape in self.outputs]
        in_ptrs = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[o.ctypes.data for o in outs])
        ws = self._workspace()
        self._run(ctypes.addressof(in_ptrs), ctypes.addressof(out_ptrs), ws.ctypes.data,
                  self.threads if threads is None else threads)
        return outs

    def __call__(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run on one input set or a batch (leading axis); returns ``{output name: array}``."""
        if not isinstance(inputs, Mapping):
            if len(self.inputs) != 1:
                raise NcnncError(f"the model has {len(self.inputs)} inputs: pass a dict of name -> array")
            inputs = {self.inputs[0][0]: inputs}
        unknown = set(inputs) - {n for n, _ in self.inputs}
        if unknown:
            raise NcnncError(f"no model input named {sorted(unknown)[0]!r} (inputs: "
                             f"{', '.join(n for n, _ in self.inputs)})")
        batch = None
        arrays = []
        for name, shape in self.inputs:
            if name not in inputs:
                raise NcnncError(f"input {name!r} was not given")
            a = np.asarray(inputs[name], np.float32)
            if a.shape == tuple(shape):
                a = a[None]
                b = 0
            elif a.shape[1:] == tuple(shape):
                b = a.shape[0]
            else:
                raise NcnncError(f"input {name!r} has shape {a.shape}, the model was compiled for {tuple(shape)}")
            if batch is not None and b != batch:
                raise NcnncError("inputs have different batch sizes")
            batch = b
            arrays.append(np.ascontiguousarray(a))
        results = [self.run_one([a[i] for a in arrays]) for i in range(max(batch or 0, 1))]
        out = {}
        for k, (name, _shape) in enumerate(self.outputs):
            stacked = np.stack([r[k] for r in results])
            out[name] = stacked if batch else stacked[0]
        return out


def jit(model: Graph | str | Path | Sequence[str | Path], target: Target | str = "host", *,
        input_shapes: dict[str, Shape] | None = None, use_cache: bool = True, threads: int = 1) -> CompiledModel:
    """Compile a model (a graph, or any frontend's files) for this machine and return a callable.

    ``target`` must be one this CPU can run (``host``, or e.g. ``x86-64-v3`` on an AVX2 machine).
    """
    from ncnnc.core.pipeline import _load

    graph = model if isinstance(model, Graph) else _load(model)[0]
    resolved = resolve(target)
    check_native(resolved)
    built = build(graph, resolved, input_shapes=input_shapes, use_cache=use_cache)
    return CompiledModel(built, resolved, threads)
