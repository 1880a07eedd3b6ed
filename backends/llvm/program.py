"""The lowered form of a model: buffers, views of them, and one step per kernel call.

Layout.  Every blob lives in a buffer as ncnn's logical shape ``(c, h, w)``, ``(h, w)`` or ``(w,)``
stored **channels-last** for 3-D blobs: element ``(ch, y, x)`` is at
``offset + (y * w + x) * pixel_stride + ch`` (``pixel_stride >= c``, larger when the blob is one
part of a concatenation along channels that its producer writes in place).  1-D and 2-D blobs are
dense (``offset + y * w + x``).  A ``(c, 1, 1)`` blob and a 1-D blob of ``c`` values therefore share one
memory form, as global pooling, InnerProduct and Softmax need.  The model function's own inputs and
outputs are dense float32 in ncnn's channel-major layout; steps convert at the boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from llvmlite import ir

from ncnnc.backends.llvm.irutil import ITEMSIZE

Shape = tuple[int, ...]


@dataclass
class Buffer:
    """A region of the workspace (``kind="workspace"``) or one of the model function's arguments
    (``kind="input"``/``"output"``, ``index`` into the pointer array)."""

    id: int
    nbytes: int
    kind: str = "workspace"
    index: int = 0
    offset: int = -1
    """Byte offset in the workspace, set by the memory plan."""


@dataclass(frozen=True)
class View:
    """Where a blob's elements are: a buffer, an element offset, the dtype and the layout."""

    buffer: int
    dtype: str
    shape: Shape
    offset: int = 0
    pixel_stride: int = 0
    """Elements between two pixels of a 3-D blob (0 for 1-D/2-D blobs, which are dense)."""
    channel_major: bool = False
    """Channel-major instead (``(ch * h + y) * w + x``): a model input read in place by the kernels that
    accept it (input preparation); :meth:`Lowerer.input` converts it for every other reader."""

    @property
    def dims(self) -> int:
        """1, 2 or 3."""
        return len(self.shape)

    @property
    def chw(self) -> tuple[int, int, int]:
        """The shape as ``(c, h, w)`` image dimensions (1-D/2-D blobs are one-channel images)."""
        if self.dims == 3:
            return self.shape  # type: ignore[return-value]
        if self.dims == 2:
            return (1, *self.shape)  # type: ignore[return-value]
        return (1, 1, self.shape[0])

    @property
    def stride(self) -> int:
        """Elements between two pixels as an image (1 for 1-D/2-D blobs)."""
        return self.pixel_stride if self.dims == 3 else 1

    @property
    def size(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def dense(self) -> bool:
        """True when the elements are contiguous (no gaps between pixels)."""
        return self.dims < 3 or self.pixel_stride == self.shape[0]

    @property
    def nbytes_span(self) -> int:
        """Bytes from the view's first element to one past its last."""
        c, h, w = self.chw
        return ((h * w - 1) * self.stride + c) * ITEMSIZE[self.dtype] if self.size else 0

    def with_(self, **changes) -> View:
        """A copy with some fields changed."""
        return replace(self, **changes)


Emitter = Callable[["KernelContext"], ir.Function]


@dataclass
class Step:
    """One kernel call: the function ``emit`` builds, called with the base pointers of ``inputs``
    then ``outputs``.  ``layer`` names the model layer it comes from (or what it prepares)."""

    name: str
    kind: str
    inputs: list[View]
    outputs: list[View]
    emit: Emitter
    layer: str = ""
    macs: int = 0
    parallel: bool = False
    """The kernel takes two more arguments, ``(thread index, thread count)``, and does its share
    (:meth:`KernelContext.split`); other steps run on the first thread only."""


@dataclass
class Program:
    """A model lowered to steps over planned buffers."""

    name: str
    buffers: list[Buffer] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    inputs: list[tuple[str, Shape]] = field(default_factory=list)
    outputs: list[tuple[str, Shape]] = field(default_factory=list)
    workspace_size: int = 0
    barrier_offset: int = 0
    """Byte offset in the workspace of the threads' barrier state (set by the memory plan)."""

    def buffer(self, id: int) -> Buffer:
        """The buffer with this id."""
        return self.buffers[id]


@dataclass
class KernelContext:
    """What a kernel emitter gets: the module to add its function to, the target, a unique name."""

    module: ir.Module
    target: object
    name: str
    step: Step

    @property
    def vector_bits(self) -> int:
        """The target's native vector width in bits (128, 256 or 512)."""
        return int(self.target.options.get("vector_bits", 128))

    def lanes(self, elem_bits: int) -> int:
        """How many elements of ``elem_bits`` fill one native vector."""
        return max(self.vector_bits // elem_bits, 1)

    def function(self) -> tuple[ir.Function, ir.IRBuilder]:
        """The step's kernel function: a pointer per input and output view, then, for a parallel step,
        ``i64`` thread index and thread count."""
        from ncnnc.backends.llvm.irutil import I64, new_function

        fn, b = new_function(self.module, self.name, len(self.step.inputs) + len(self.step.outputs),
                             extra=[I64, I64] if self.step.parallel else [])
        return fn, b

    def split(self, b: ir.IRBuilder, fn: ir.Function, total: int) -> tuple[ir.Value, ir.Value]:
        """This thread's share ``[start, stop)`` of ``total`` iterations of a parallel kernel's outer loop
        (all of them for a serial step).  Shares depend only on the index and count, and every output
        element is computed the same way whoever computes it: results do not depend on the thread count."""
        from ncnnc.backends.llvm.irutil import i64

        if not self.step.parallel:
            return i64(0), i64(total)
        tid, count = fn.args[-2], fn.args[-1]
        start = b.sdiv(b.mul(tid, i64(total)), count)
        stop = b.sdiv(b.mul(b.add(tid, i64(1)), i64(total)), count)
        return start, stop
