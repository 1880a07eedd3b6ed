"""Where ncnn's int8 arithmetic depends on the CPU family it runs on.

ncnn's x86 and arm kernels agree bit for bit but in one place: the packed (8 channels at a time)
int8 ConvolutionDepthWise kernel on x86 dequantizes with ``_mm_rcp_ps(input_scale * weight_scale)``,
the CPU's reciprocal *estimate* (about 12 bits; its exact values differ between CPU vendors), where
every other kernel, and every arm kernel, divides; and it multiplies, then adds the bias (two
roundings), where the others fuse the two.  The estimate is off by up to 3.7e-4 relative, so a
requantized output lands one int8 step away from the divided one in a few values per layer; the
separate rounding moves one value in a few hundred thousand.

To equal the runtime on the machine at hand, the estimate is computed by the machine's own ``rcpps``
instruction (a four-instruction function compiled once with llvmlite).  On a host that is not x86 the
instruction does not exist and the division is used: such a host's simulation of x86 arithmetic is
then exact to the divided form, one int8 step from the x86 runtime in those few values.
"""

from __future__ import annotations

import ctypes
import functools
import platform
from typing import Literal

import numpy as np

CpuFamily = Literal["x86", "arm"]
"""The CPU families whose ncnn int8 kernels differ: ``"x86"`` and ``"arm"`` (aarch64 and others)."""

PACKED_DEPTHWISE_CHANNELS = 8
"""ncnn's x86 int8 depthwise kernel packs channels by 8 when the channel count is a multiple of it."""

_X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")


def host_family() -> CpuFamily:
    """The CPU family of this machine."""
    return "x86" if platform.machine().lower() in _X86_MACHINES else "arm"


def triple_family(triple: str) -> CpuFamily:
    """The CPU family of an LLVM target triple (``x86_64-unknown-linux-gnu`` -> ``"x86"``)."""
    arch = triple.split("-")[0].lower()
    return "x86" if arch in _X86_MACHINES else "arm"


def packed_x86_depthwise(family: CpuFamily, depthwise: bool, channels: int) -> bool:
    """True when ncnn runs this int8 layer with its x86 pack-8 depthwise kernel: dequantization scales
    from the reciprocal estimate, and the bias added after the multiplication (not fused with it)."""
    return family == "x86" and depthwise and channels % PACKED_DEPTHWISE_CHANNELS == 0


def reciprocal_estimate(values: np.ndarray) -> np.ndarray:
    """This CPU's ``rcpps`` of float32 ``values`` (the exact reciprocal on a host that is not x86)."""
    values = np.ascontiguousarray(values, np.float32).ravel()
    compiled = _host_rcpps()
    if compiled is None:
        with np.errstate(divide="ignore"):
            return np.float32(1.0) / values
    n = -(-values.size // 4) * 4
    src, dst = np.ones(n, np.float32), np.empty(n, np.float32)
    src[:values.size] = values
    compiled[1](src.ctypes.data, dst.ctypes.data, n)
    return dst[:values.size].copy()


_RCPPS_IR = r"""
declare <4 x float> @llvm.x86.sse.rcp.ps(<4 x float>)

define void @rcpps(float* %src, float* %dst, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
  %s = getelementptr float, float* %src, i64 %i
  %sv = bitcast float* %s to <4 x float>*
  %x = load <4 x float>, <4 x float>* %sv, align 4
  %r = call <4 x float> @llvm.x86.sse.rcp.ps(<4 x float> %x)
  %d = getelementptr float, float* %dst, i64 %i
  %dv = bitcast float* %d to <4 x float>*
  store <4 x float> %r, <4 x float>* %dv, align 4
  %next = add i64 %i, 4
  %more = icmp slt i64 %next, %n
  br i1 %more, label %loop, label %done
done:
  ret void
}
"""


@functools.lru_cache(maxsize=1)
def _host_rcpps() -> tuple | None:
    """``(engine, rcpps)``: ``rcpps(src, dst, n)`` compiled for this x86 CPU (``n`` a positive multiple of 4)
    and the engine that holds its code; None on a host that is not x86."""
    if host_family() != "x86":
        return None
    import llvmlite.binding as llvm

    from ncnnc.backends.llvm.codegen import target_machine
    from ncnnc.backends.llvm.targets import host_target

    module = llvm.parse_assembly(_RCPPS_IR)
    engine = llvm.create_mcjit_compiler(module, target_machine(host_target()))
    engine.finalize_object()
    function = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
        engine.get_function_address("rcpps"))
    return engine, function
