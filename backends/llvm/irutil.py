"""Small llvmlite helpers the kernels share: types, constants, counted loops, vector ops.

Kernels are written against these few primitives so that each kernel module reads as the loop
nest it emits.  Indices are ``i64``; pointers are opaque (``ptr``), so every load, store and GEP
names its element type.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from llvmlite import ir

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()

DTYPES = {"f32": F32, "i8": I8, "u8": I8, "i32": I32}
"""LLVM element type of each blob dtype (``u8`` is int8 shifted by +128, stored in an ``i8``)."""

ITEMSIZE = {"f32": 4, "i8": 1, "u8": 1, "i32": 4}
"""Bytes per element of each blob dtype."""


def i64(v: int) -> ir.Constant:
    """An ``i64`` constant."""
    return ir.Constant(I64, int(v))


def i32(v: int) -> ir.Constant:
    """An ``i32`` constant."""
    return ir.Constant(I32, int(v))


def f32(v: float) -> ir.Constant:
    """A ``float`` constant holding exactly the float32 value of ``v``."""
    return ir.Constant(F32, float(np.float32(v)))



def vec(ty: ir.Type, n: int) -> ir.VectorType:
    """``<n x ty>``."""
    return ir.VectorType(ty, n)


def splat(b: ir.IRBuilder, value: ir.Value, n: int) -> ir.Value:
    """A vector of ``n`` copies of a scalar value."""
    if isinstance(value, ir.Constant):
        return ir.Constant(vec(value.type, n), [value] * n)
    v = b.insert_element(ir.Constant(vec(value.type, n), ir.Undefined), value, i32(0))
    return b.shuffle_vector(v, ir.Constant(vec(value.type, n), ir.Undefined), ir.Constant(vec(I32, n), [0] * n))


def gep(b: ir.IRBuilder, ptr: ir.Value, ty: ir.Type, index: ir.Value | int) -> ir.Value:
    """``&((ty *) ptr)[index]``."""
    if isinstance(index, int):
        index = i64(index)
    return b.gep(ptr, [index], inbounds=True, source_etype=ty)


def load(b: ir.IRBuilder, ptr: ir.Value, ty: ir.Type, index: ir.Value | int, align: int = 1) -> ir.Value:
    """``((ty *) ptr)[index]`` (vector types load unaligned unless ``align`` says more)."""
    return b.load(gep(b, ptr, ty if not isinstance(ty, ir.VectorType) else ty.element, index), typ=ty,
                  align=align if isinstance(ty, ir.VectorType) else None)


def store(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, index: ir.Value | int, align: int = 1) -> None:
    """``((type of value *) ptr)[index] = value`` (vectors unaligned unless ``align`` says more)."""
    ty = value.type
    elem = ty.element if isinstance(ty, ir.VectorType) else ty
    b.store(value, gep(b, ptr, elem, index), align=align if isinstance(ty, ir.VectorType) else None)


def store_lanes(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, index: ir.Value, valid: int) -> None:
    """Store the first ``valid`` lanes of vector ``value`` at ``ptr[index]`` (all of them as one vector store)."""
    if valid == value.type.count:
        store(b, value, ptr, index)
        return
    for lane in range(valid):
        store(b, b.extract_element(value, i32(lane)), ptr, b.add(index, i64(lane)))


def intrinsic(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    """Declare (once) an LLVM intrinsic or external function."""
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, args), name)


def type_suffix(ty: ir.Type) -> str:
    """The overload suffix of an intrinsic for ``ty`` (``f32``, ``v16f32``, ``v8i32``, ...)."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{type_suffix(ty.element)}"
    if ty == F32:
        return "f32"
    if ty == F64:
        return "f64"
    return f"i{ty.width}"


def call_intrinsic(b: ir.IRBuilder, name: str, args: list[ir.Value], ret: ir.Type | None = None) -> ir.Value:
    """Call an overloaded intrinsic such as ``llvm.trunc`` on ``args``; the suffix comes from the first arg."""
    ty = args[0].type
    fn = intrinsic(b.module, f"{name}.{type_suffix(ty)}", ret or ty, [a.type for a in args])
    return b.call(fn, args)


@contextmanager
def for_range(b: ir.IRBuilder, start: ir.Value | int, stop: ir.Value | int, step: int = 1,
              name: str = "i") -> Iterator[ir.Value]:
    """Emit ``for (i = start; i < stop; i += step) { body }``; yields ``i`` (an ``i64``).

    The body is emitted inside the ``with`` block; afterwards the builder is positioned after the loop.
    A loop whose constant bounds give no iterations still emits valid (dead) code.
    """
    start = i64(start) if isinstance(start, int) else start
    stop = i64(stop) if isinstance(stop, int) else stop
    pre = b.block
    header = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", index, stop), body, done)
    b.position_at_end(body)
    yield index
    nxt = b.add(index, i64(step), name=f"{name}.next")
    index.add_incoming(nxt, b.block)
    b.branch(header)
    b.position_at_end(done)


def new_function(module: ir.Module, name: str, n_args: int, linkage: str = "internal",
                 extra: list[ir.Type] | None = None) -> tuple[ir.Function, ir.IRBuilder]:
    """A ``void name(ptr, ptr, ..., *extra)`` kernel function with a builder at its entry.

    Kernels are never inlined into the model function: LLVM's later passes grow faster than linearly
    with a function's size, and a kernel per function keeps codegen time in line and the assembly readable.
    """
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR] * n_args + list(extra or [])), name)
    fn.linkage = linkage
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")  # one function per kernel: the model function stays a list of calls
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def add_constant(module: ir.Module, name: str, data: np.ndarray, align: int = 64) -> ir.GlobalVariable:
    """Place an array's bytes in the module as an internal constant (weights, scales, tables)."""
    raw = np.ascontiguousarray(data).tobytes()
    ty = ir.ArrayType(I8, max(len(raw), 1))
    g = ir.GlobalVariable(module, ty, name)
    g.initializer = ir.Constant(ty, bytearray(raw or b"\0"))
    g.global_constant = True
    g.linkage = "internal"
    g.align = align
    return g


def entry_alloca(b: ir.IRBuilder, ty: ir.Type, name: str = "") -> ir.Value:
    """A stack slot in the function's entry block (so LLVM promotes it to registers), for values a
    loop carries from one iteration to the next."""
    entry = b.function.entry_basic_block
    with b.goto_block(entry):
        if entry.instructions:
            b.position_before(entry.instructions[0])
        return b.alloca(ty, name=name)


def concat(b: ir.IRBuilder, vectors: list[ir.Value]) -> ir.Value:
    """The lanes of equally typed ``vectors`` one after another (zero vectors pad the count to a power of two)."""
    while len(vectors) > 1:
        if len(vectors) % 2:
            vectors = [*vectors, ir.Constant(vectors[0].type, None)]
        n = vectors[0].type.count
        mask = ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n)))
        vectors = [b.shuffle_vector(vectors[i], vectors[i + 1], mask) for i in range(0, len(vectors), 2)]
    return vectors[0]
