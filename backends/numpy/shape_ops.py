"""Layers that move data around: Concat, Split, Slice, Crop, Reshape, Flatten, Permute, Padding,
ShuffleChannel, Dropout, Noop, MemoryData.  Axes are ncnn's (batch is not an ncnn axis)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ncnnc.backends.numpy.common import np_axis
from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.ir import Layer
from ncnnc.core.shapes import reshape_target

PERMUTES = {dims: list(itertools.permutations(range(dims))) for dims in (3, 4)}
"""Permute ``order_type`` of a 3-D / 4-D blob -> numpy axes of ``(c, h, w)`` / ``(c, d, h, w)``: the
order types number the axis permutations in lexicographic order (0-5 for 3-D, 0-23 for 4-D)."""


@register_op("Concat")
class Concat(Op):
    """Concatenate along ``0=axis``."""

    def run(self, *xs: np.ndarray) -> np.ndarray:
        """The inputs concatenated along the layer's axis."""
        return np.concatenate(xs, axis=np_axis(self.p["axis"], xs[0].ndim - 1))


@register_op("Split")
class Split(Op):
    """The same blob under several names (no copy: ops never write to their inputs)."""

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """One reference to ``x`` per output blob."""
        return [x] * len(self.layer.outputs)


@register_op("Slice")
class Slice(Op):
    """Split along ``1=axis`` into ``0=slices`` sizes (-233: an equal share of the rest) or at
    ``2=indices``."""

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """One view of ``x`` per output blob, cut along the layer's axis."""
        axis = np_axis(self.p["axis"], x.ndim - 1)
        total = x.shape[axis]
        slices, indices = self.p["slices"], self.p["indices"]
        count = len(self.layer.outputs)
        bounds, q = [], 0
        for i in range(count):
            if indices:
                if i == count - 1:
                    size = total - q
                else:
                    idx = indices[i] + total if indices[i] < 0 else indices[i]
                    size = idx - q
            else:
                size = slices[i]
                if size == -233:
                    size = (total - q) // (count - i)
            bounds.append((q, q + size))
            q += size
        index: list = [slice(None)] * x.ndim
        outs = []
        for lo, hi in bounds:
            index[axis] = slice(lo, hi)
            outs.append(x[tuple(index)])
        return outs


@register_op("Crop")
class Crop(Op):
    """Crop by offsets and sizes, by numpy-style ``starts/ends/axes``, or to a reference blob's shape.

    Offsets and sizes are ncnn's per-axis params (w, h, d, c; d for 4-D blobs only).  On a 4-D blob the
    reference must be 4-D too (with another rank the runtime reads outside the blob) and the
    ``0=-233`` form (offsets and sizes as the reference's values) is refused, as by the runtime.
    """

    def run(self, x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
        """A view of ``x`` cropped to the region the params (or ``ref``) give."""
        shape = x.shape[1:]
        if len(shape) == 4 and ref is not None and (ref.ndim != 5 or self.p["woffset"] == -233):
            raise self.unsupported("of a 4-D blob by a reference that is not a 4-D blob shape")
        offsets, sizes = self._roi(shape, ref)
        index = (slice(None), *tuple(slice(o, o + s) for o, s in zip(offsets, sizes)))
        return x[index]

    def _roi(self, shape: tuple[int, ...], ref: np.ndarray | None) -> tuple[list[int], list[int]]:
        """Offsets and sizes per numpy axis of one sample."""
        p = self.p
        dims = len(shape)
        # ncnn parameter order is (w, h, [d,] c); numpy order of a sample is the reverse
        keys = ("w", "h", "d", "c") if dims == 4 else ("w", "h", "c")[:dims]
        off_whc = [p[f"{k}offset"] for k in keys]
        if ref is not None:
            if p["woffset"] == -233:
                vals = [int(v) for v in ref[0].ravel()]
                off_whc, size_whc = vals[:dims], vals[3:3 + dims]
            else:
                rshape = ref.shape[1:]
                size_whc = list(reversed(rshape))[:dims]
                if dims == 3 and len(rshape) != 3:
                    size_whc[2] = shape[0]
            return off_whc[::-1], size_whc[::-1]
        starts, ends, axes = p["starts"], p["ends"], p["axes"]
        if starts and ends:
            offsets, sizes = [0] * dims, list(shape)
            for i, axis in enumerate(axes or range(dims)):
                axis = axis + dims if axis < 0 else axis
                n = shape[axis]
                start, end = starts[i], ends[i]
                start = 0 if start == -233 else start
                end = n if end == -233 else end
                offsets[axis] = start if start >= 0 else n + start
                sizes[axis] = min(n, end if end > 0 else n + end) - offsets[axis]
            return offsets, sizes
        off2_whc = [p[f"{k}offset2"] for k in keys]
        out_whc = [p[f"out{k}"] for k in keys]
        ext_whc = list(reversed(shape))
        size_whc = []
        for n, o1, o2, out in zip(ext_whc, off_whc, off2_whc, out_whc):
            size = n - o1 - o2
            size_whc.append(size if out == -233 else min(out, size))
        return off_whc[::-1], size_whc[::-1]


@register_op("Reshape")
class Reshape(Op):
    """Reshape to ``0=w 1=h 11=d 2=c`` (-233 drops the axis, 0 keeps the input's, -1 infers)."""

    def run(self, x: np.ndarray, *shape_refs: np.ndarray) -> np.ndarray:
        """``x`` with each sample reshaped to the target ``w/h/d/c`` (or the ``6=`` shape expression's,
        which may read the sizes of further inputs)."""
        w, h, d, c = reshape_target(self.layer, [a.shape[1:] for a in (x, *shape_refs)])
        if w == -233:
            raise self.unsupported("without a target shape")
        spec = [("w", w)] if h == -233 else [("w", w), ("h", h)] if c == -233 else \
            [("w", w), ("h", h), ("c", c)] if d == -233 else [("w", w), ("h", h), ("d", d), ("c", c)]
        sample = x.shape[1:]
        named = dict(zip({1: "w", 2: "hw", 3: "chw", 4: "cdhw"}[len(sample)], sample))
        total = int(np.prod(sample))
        values = {k: (named.get(k, 1) if v == 0 else v) for k, v in spec}
        known = int(np.prod([v for v in values.values() if v != -1]))
        values = {k: (total // known if v == -1 else v) for k, v in values.items()}
        out = [values[k] for k in "cdhw" if k in values]
        return x.reshape((x.shape[0], *out))


@register_op("Flatten")
class Flatten(Op):
    """Flatten each sample to 1-D."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, ...) -> (N, size)``."""
        return x.reshape(x.shape[0], -1)


@register_op("Permute")
class Permute(Op):
    """Reorder the axes of a 2-D (order 0/1), 3-D (order 0-5) or 4-D (order 0-23) blob."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x`` with its sample axes reordered by ``order_type``."""
        order, dims = self.p["order_type"], x.ndim - 1
        if order == 0 or dims == 1:
            return x
        if dims == 2:
            return np.ascontiguousarray(x.transpose(0, 2, 1))
        if order < len(PERMUTES[dims]):
            return np.ascontiguousarray(x.transpose((0, *(a + 1 for a in PERMUTES[dims][order]))))
        raise self.unsupported(f"order_type {order} on a {dims}-D blob")


@register_op("Padding")
class Padding(Op):
    """Pad h/w (``0-3=`` top bottom left right) and ``7=front 8=behind`` (channels of a 3-D blob, depth
    of a 4-D blob): constant (per channel from weights when ``6=`` is set), replicate or reflect
    (``4=type`` 0/1/2)."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.per_channel = layer.weight("per_channel_pad") if self.p["per_channel_pad_data_size"] else None

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x`` padded on the configured sides."""
        p = self.p
        dims = x.ndim - 1
        top, bottom, left, right = p["top"], p["bottom"], p["left"], p["right"]
        front, behind = p["front"], p["behind"]
        widths = {1: [(left, right)], 2: [(top, bottom), (left, right)],
                  3: [(front, behind), (top, bottom), (left, right)],
                  4: [(0, 0), (front, behind), (top, bottom), (left, right)]}[dims]
        widths = [(0, 0), *widths]
        ptype = p["type"]
        if ptype == 1:
            return np.pad(x, widths, mode="edge")
        if ptype == 2:
            return np.pad(x, widths, mode="reflect")
        if ptype != 0:
            raise self.unsupported(f"type {ptype}")
        out = np.pad(x, widths, constant_values=np.float32(p["value"]))
        if self.per_channel is not None and dims >= 3:
            inner = tuple(slice(lo, lo + n) for (lo, _hi), n in zip(widths, x.shape))
            values = self.per_channel.reshape((1, -1) + (1,) * (dims - 1))[:, : out.shape[1]]
            out[...] = values
            out[inner] = x
        return out


@register_op("ShuffleChannel")
class ShuffleChannel(Op):
    """Channel shuffle with ``0=group`` (``1=reverse`` undoes it)."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """Same shape, channels shuffled across the groups."""
        n, c = x.shape[:2]
        group = self.p["group"]
        if self.p["reverse"]:
            group = c // group
        y = x.reshape((n, group, c // group, *x.shape[2:])).swapaxes(1, 2)
        return np.ascontiguousarray(y).reshape(x.shape)


@register_op("Dropout")
class Dropout(Op):
    """Inference-time dropout: identity, or multiplication by ``0=scale``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x``, or ``x * scale``."""
        scale = self.p["scale"]
        return x if scale == 1 else x * np.float32(scale)


@register_op("Noop")
class Noop(Op):
    """Passes its inputs through unchanged."""

    def run(self, *xs: np.ndarray) -> Sequence[np.ndarray]:
        """The inputs, unchanged."""
        return list(xs)


@register_op("MemoryData")
class MemoryData(Op):
    """A constant blob stored in the model."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.data = layer.weight("data")[None]

    def run(self) -> np.ndarray:
        """The stored constant as a batch of one."""
        return self.data
