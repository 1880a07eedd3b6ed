"""Run graphs and model files in the real ncnn runtime (PyPI ``ncnn``), for comparisons.

The runtime is set to exact fp32 arithmetic (no fp16/bf16 storage or arithmetic, no Vulkan), so
its output can be compared with the numpy backend tightly.  Inputs are numpy arrays in ncnn's
``(c, h, w)`` / ``(h, w)`` / ``(w,)`` layout, without batch.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph


def _ncnn():
    try:
        import ncnn
    except ImportError:
        raise NcnncError("the ncnn runtime is not installed (pip install ncnn)") from None
    return ncnn


def _runtime_layers() -> list:
    """The plugins' custom layers that bring a Python ``ncnn.Layer`` for the runtime."""
    from ncnnc.core.registry import registry

    return [r.item for r in registry().all("layer_implementations") if r.item.runtime_layer is not None]


class RuntimeNet:
    """A loaded ncnn ``Net``; ``run`` feeds inputs and extracts outputs."""

    def __init__(self, param_path: str | Path, bin_path: str | Path, num_threads: int = 1,
                 exact: bool = True, use_int8: bool = True) -> None:
        ncnn = _ncnn()
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = num_threads
        opt.use_vulkan_compute = False
        opt.use_int8_inference = use_int8
        if exact:
            opt.use_fp16_storage = False
            opt.use_fp16_packed = False
            opt.use_fp16_arithmetic = False
            opt.use_bf16_storage = False
        self._custom_layers: list = []  # Python layers the runtime created: kept alive while the net is
        for impl in _runtime_layers():
            self.net.register_custom_layer(impl.type, self._creator(impl.runtime_layer), self._destroyer)
        binary = str(param_path).endswith(".param.bin")
        load_param = self.net.load_param_bin if binary else self.net.load_param
        if load_param(str(param_path)) != 0:
            raise NcnncError("the ncnn runtime cannot load this .param", str(param_path))
        if self.net.load_model(str(bin_path)) != 0:
            raise NcnncError("the ncnn runtime cannot load this .bin", str(bin_path))

    def _creator(self, factory):
        def create():
            layer = factory()
            self._custom_layers.append(layer)
            return layer
        return create

    def _destroyer(self, layer) -> None:
        self._custom_layers = [x for x in self._custom_layers if x is not layer]

    def run(self, inputs: Mapping[str | int, np.ndarray], outputs: Iterable[str | int]) -> dict:
        """One forward pass; returns a float32 copy of each requested blob.

        Blobs are named, or given by index for a model loaded from ncnn2mem's ``.param.bin``.
        """
        ncnn = _ncnn()
        ex = self.net.create_extractor()
        ex.set_light_mode(False)  # keep intermediates so any blob can be extracted in any order
        keep = []
        for name, array in inputs.items():
            arr = np.ascontiguousarray(array, dtype=np.float32)
            # ncnn.Mat(arr) borrows numpy's memory with a packed channel step; ncnn layers expect each
            # channel 16-byte aligned (cstep), so a 3-D input whose h*w is not a multiple of 4 would be
            # read wrongly by some layers.  clone() copies into a properly aligned Mat.
            mat = ncnn.Mat(arr).clone()
            keep.append(mat)
            if ex.input(name, mat) != 0:
                raise NcnncError(f"the ncnn runtime has no input blob {name!r}")
        result = {}
        for name in outputs:
            ret, mat = ex.extract(name)
            if ret != 0:
                raise NcnncError(f"the ncnn runtime could not extract blob {name!r}")
            # an empty blob (a detection layer that found nothing) has no buffer numpy could read
            result[name] = np.zeros((0,), np.float32) if mat.empty() else np.array(mat, dtype=np.float32, copy=True)
        del keep
        return result


def run_graph(graph: Graph, inputs: Mapping[str, np.ndarray], outputs: Iterable[str] | None = None,
              num_threads: int = 1) -> dict[str, np.ndarray]:
    """Write ``graph`` to a temporary model, run it once in the real runtime, return the outputs."""
    from ncnnc.backends.ncnn_writer import save

    with tempfile.TemporaryDirectory(prefix="ncnnc-rt-") as tmp:
        param, binf = Path(tmp) / "model.param", Path(tmp) / "model.bin"
        save(graph, param, binf)
        net = RuntimeNet(param, binf, num_threads=num_threads)
        return net.run(inputs, list(outputs) if outputs is not None else graph.outputs)
