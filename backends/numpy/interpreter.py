"""The numpy interpreter: runs a graph on a batch, layer by layer, freeing blobs early."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np

from ncnnc.backends.numpy.blas import single_thread
from ncnnc.backends.numpy.concat_plan import ConcatPlan
from ncnnc.backends.numpy.cpu_family import CpuFamily
from ncnnc.backends.numpy.registry import Op, make_op
from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph, Layer

Observer = Callable[[str, np.ndarray], None]


class Interpreter:
    """Runs a :class:`~ncnnc.core.ir.Graph` with ncnn's semantics on batched numpy arrays.

    Ops are built once (weights prepared) when the interpreter is created; an unsupported layer is
    reported then, as an :class:`~ncnnc.core.errors.UnsupportedError` naming the layer.  Layers run
    with BLAS on one thread (:func:`~ncnnc.backends.numpy.blas.single_thread`), so results do not
    depend on the machine's core count.  int8 layers compute as ncnn's kernels do on the CPU ``family``
    (``"x86"`` or ``"arm"``; default: this machine's), which differ in one place
    (:mod:`~ncnnc.backends.numpy.cpu_family`).
    """

    def __init__(self, graph: Graph, family: CpuFamily | None = None) -> None:
        self.graph = graph
        self.layers: list[Layer] = list(graph.layers)
        self.ops: dict[str, Op] = {layer.name: make_op(layer, family) for layer in self.layers
                                   if layer.type != "Input"}
        self.producer: dict[str, int] = {b: i for i, layer in enumerate(self.layers) for b in layer.outputs}
        self.concats = ConcatPlan(self.layers, self.ops)
        self._footprints: dict[tuple, int] = {}

    def _check_memory(self, inputs: Mapping[str, np.ndarray], batch: int) -> None:
        """Refuse (before allocating) a batch whose blobs together would exceed the memory limit.

        The estimate is every blob's float32 size from shape inference times the batch: an upper
        bound of what a run holds at once.  A graph shape inference cannot size is not estimated.
        """
        from ncnnc.core.resources import ResourceError, check_bytes
        from ncnnc.core.shapes import infer_shapes

        key = tuple((name, a.shape[1:]) for name, a in inputs.items())
        if key not in self._footprints:
            saved = self.graph.shapes
            try:
                shapes = infer_shapes(self.graph, dict(key))
            except ResourceError:
                raise
            except NcnncError:
                shapes = {}
            finally:
                self.graph.shapes = saved
            self._footprints[key] = 4 * sum(int(np.prod(s)) for s in shapes.values())
        check_bytes(batch * self._footprints[key], f"running a batch of {batch}")

    def _schedule(self, provided: Collection[str], wanted: Collection[str]) -> list[int]:
        """Indices of the layers needed to compute ``wanted`` from ``provided``, in graph order."""
        needed: set[int] = set()
        stack = [b for b in wanted if b not in provided]
        seen: set[str] = set()
        while stack:
            blob = stack.pop()
            if blob in seen:
                continue
            seen.add(blob)
            index = self.producer[blob]
            layer = self.layers[index]
            if layer.type == "Input":
                raise NcnncError(f"input blob {blob!r} was not given (inputs given: {', '.join(provided)})")
            needed.add(index)
            stack.extend(b for b in layer.inputs if b not in provided)
        return sorted(needed)

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None,
            observe: Observer | None = None, keep: Collection[str] | None = None) -> dict[str, np.ndarray]:
        """Run a batch.

        ``inputs`` maps blob names (normally the graph inputs; any blob may be fed, as ncnn's
        ``Extractor.input`` allows) to arrays shaped ``(N, *ncnn_shape)``.  ``outputs`` names the
        requested blobs (default: the graph outputs).  Without ``observe``, the result holds every
        requested blob.  With ``observe``, ``observe(name, array)`` is called for each requested
        blob as soon as it is computed, and the result holds only the requested blobs in ``keep``
        (default: those that are graph outputs); every other blob is freed as soon as no later
        layer reads it.  Returned arrays may share memory with each other: do not write to them.
        """
        wanted = list(dict.fromkeys(self.graph.outputs if outputs is None else outputs))
        for name in list(inputs) + wanted:
            if name not in self.producer:
                raise NcnncError(f"no blob named {name!r} in the graph")
        returned = set(wanted) if observe is None else set(wanted) & set(self.graph.outputs if keep is None else keep)
        blobs: dict[str, np.ndarray] = {}
        batch = None
        for name, array in inputs.items():
            arr = np.ascontiguousarray(array, dtype=np.float32)
            if arr.ndim < 2:
                raise NcnncError(f"input {name!r} must be batched (N, ...), got shape {arr.shape}")
            batch = arr.shape[0] if batch is None else batch
            if arr.shape[0] != batch:
                raise NcnncError(f"inputs have different batch sizes ({batch} and {arr.shape[0]})")
            blobs[name] = arr
        if batch is not None:
            self._check_memory(blobs, batch)
        schedule = self._schedule(set(inputs), wanted)
        last_use = self._last_uses(schedule)
        result: dict[str, np.ndarray] = {}
        wanted_set = set(wanted)
        for name in inputs:
            self._deliver(name, blobs[name], wanted_set, returned, observe, result)
        concats = self.concats.start({self.layers[i].name for i in schedule})
        with single_thread():
            for step, index in enumerate(schedule):
                layer = self.layers[index]
                outs = self._run_layer(layer, [blobs[b] for b in layer.inputs], batch, concats)
                for blob in layer.inputs:
                    if last_use[blob] <= step:
                        del blobs[blob]
                for blob, value in zip(layer.outputs, outs):
                    self._deliver(blob, value, wanted_set, returned, observe, result)
                    if last_use.get(blob, -1) > step:
                        blobs[blob] = value
        return {name: result[name] for name in wanted if name in result}

    def _last_uses(self, schedule: list[int]) -> dict[str, int]:
        last: dict[str, int] = {}
        for step, index in enumerate(schedule):
            for blob in self.layers[index].inputs:
                last[blob] = step
        return last

    @staticmethod
    def _deliver(blob: str, value: np.ndarray, wanted: set[str], returned: set[str],
                 observe: Observer | None, result: dict[str, np.ndarray]) -> None:
        if blob not in wanted:
            return
        if observe is not None:
            observe(blob, value)
        if blob in returned:
            result[blob] = value

    def _run_layer(self, layer: Layer, args: list[np.ndarray], batch: int | None,
                   concats: dict | None = None) -> list[np.ndarray]:
        op = self.ops[layer.name]
        try:
            target = self.concats.target(concats, layer, op, args) if concats else None
            if target is not None:
                out = op.run(*args, out=target)
            else:
                done = self.concats.result(concats, layer, args) if concats else None
                out = op.run(*args) if done is None else done
        except (ValueError, IndexError) as e:
            shapes = ", ".join(str(a.shape[1:]) for a in args)
            raise NcnncError(f"{layer.type} cannot run on inputs of shape {shapes}: {e}",
                             where=f"layer {layer.name}") from None
        outs = [out] if isinstance(out, np.ndarray) else list(out)
        if len(outs) != len(layer.outputs):
            raise NcnncError(f"{layer.type} produced {len(outs)} outputs, the layer declares "
                             f"{len(layer.outputs)}", where=f"layer {layer.name}")
        if not args and batch is not None:
            outs = [np.broadcast_to(o, (batch, *o.shape[1:])) for o in outs]
        return outs
