"""Convolutions that write straight into the channel concatenation that reads them.

A Concat along channels of convolution outputs (SqueezeNet's fire modules, Inception blocks) would
copy every value once more.  When each input of such a Concat is the output of a plain fp32
Convolution / ConvolutionDepthWise, the interpreter allocates the concatenation when the first of
them runs, each convolution writes its result into its channel slice, and the Concat hands on the
whole array.  The slices are the convolution outputs (views), so observers and callers see the
same values as before.  Anything unexpected at run time (a blob fed by the caller, another spatial
size, another dtype) falls back to the plain path: the Concat then concatenates as usual.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from ncnnc.backends.numpy.conv_ops import Convolution, ConvolutionDepthWise
from ncnnc.backends.numpy.registry import Op
from ncnnc.backends.numpy.shape_ops import Concat
from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Layer


@dataclass
class _Buffer:
    """One run's concatenation: the array, and the slices handed out so far (by input index)."""

    array: np.ndarray
    views: dict[int, np.ndarray] = field(default_factory=dict)


class ConcatPlan:
    """Which convolution outputs go straight into which Concat (decided once per interpreter)."""

    def __init__(self, layers: list[Layer], ops: Mapping[str, Op]) -> None:
        producers = {b: layer for layer in layers for b in layer.outputs}
        self.slots: dict[str, tuple[str, int]] = {}  # conv output blob -> (concat layer, input index)
        self.offsets: dict[str, list[int]] = {}  # concat layer -> channel offsets, and the total last
        for layer in layers:
            if type(ops.get(layer.name)) is not Concat or layer.params["axis"] not in (0, -3):
                continue
            if len(layer.inputs) < 2 or len(set(layer.inputs)) != len(layer.inputs):
                continue
            sources = [producers.get(b) for b in layer.inputs]
            if any(p is None or len(p.outputs) != 1 or type(ops.get(p.name)) not in (Convolution, ConvolutionDepthWise)
                   or p.outputs[0] in self.slots for p in sources):
                continue
            offsets = [0]
            for p in sources:
                offsets.append(offsets[-1] + ops[p.name].n)
            self.offsets[layer.name] = offsets
            for i, blob in enumerate(layer.inputs):
                self.slots[blob] = (layer.name, i)

    def start(self, scheduled: Collection[str]) -> dict[str, _Buffer | None]:
        """Per-run state: the Concat layers of this run's schedule that may be planned."""
        return {name: None for name in self.offsets if name in scheduled}

    def target(self, state: dict[str, _Buffer | None], layer: Layer, op: Op, args: list[np.ndarray]
               ) -> np.ndarray | None:
        """The slice ``layer`` (a convolution) should write into, or None to run it plainly."""
        slot = self.slots.get(layer.outputs[0]) if len(layer.outputs) == 1 else None
        if slot is None or slot[0] not in state or len(args) != 1 or args[0].dtype != np.float32:
            return None
        name, index = slot
        try:
            shape = op.output_shape(args[0])
        except (ValueError, NcnncError):
            shape = None
        buffer = state[name]
        offsets = self.offsets[name]
        if shape is None or len(shape) != 4 or (
                buffer is not None and (buffer.array.shape[0], *buffer.array.shape[2:]) != (shape[0], *shape[2:])):
            del state[name]  # the Concat concatenates as usual
            return None
        if buffer is None:
            buffer = state[name] = _Buffer(np.empty((shape[0], offsets[-1], *shape[2:]), np.float32))
        view = buffer.views[index] = buffer.array[:, offsets[index]:offsets[index + 1]]
        return view

    def result(self, state: dict[str, _Buffer | None], layer: Layer, args: list[np.ndarray]) -> np.ndarray | None:
        """The finished concatenation when ``layer`` is a planned Concat whose inputs all went into it."""
        buffer = state.pop(layer.name, None)
        if buffer is None or len(buffer.views) != len(args):
            return None
        if all(args[i] is view for i, view in buffer.views.items()):
            return buffer.array
        return None
