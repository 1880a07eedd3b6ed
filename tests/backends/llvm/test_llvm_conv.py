"""The LLVM backend's Convolution and ConvolutionDepthWise kernels (int8 and fp32) against the numpy simulation.

Hypothesis draws the geometry (channels that are not multiples of the vector width, odd sizes, kernels
1/2/3/5 and non-square, explicit pads incl. asymmetric, the -233/-234 SAME modes incl. their negative
crops, stride 2, dilation, groups, depthwise), the fused activation (0, 1, 2, 3, 4, 6), bias on/off and
the int8 scale terms (``8=2``, depthwise ``8=1`` per-group and ``8=2`` one scale, ``+100`` requantize).
Graphs are one convolution, a chain whose second layer reads the first one's requantized int8 output,
or two convolutions written into one Concat (strided channel views, unaligned offsets), optionally
read by an int8 convolution; they run on the host JIT at 512-, 256- and 128-bit vector widths, with the
generic int8 kernel and the per-target ones where the CPU has them: AVX-512 VNNI (``vpdpbusd``), AVX2
(``vpmaddwd`` on int16 operands, ``x86-64-v3``).

Exactness: int8 results and fp32 depthwise results are bit-identical to the simulation.  The fp32
general kernel sums its ``K = cin_g * kh * kw`` products in another order than BLAS, so each output may
differ by at most ``2 K u sum|w x|`` (``u = 2**-24``, the classic bound for two summation orders),
scaled by the activation's Lipschitz constant, plus a few ulps of the bias add and the activation.

``test_armv8_*`` cross-compile batches of cases into one multi-input graph, run them under
qemu-aarch64 with :func:`ncnnc.backends.llvm.native.run_native` and compare with the host JIT bit for bit;
hypothesis batches of int8 layers run the same way on the dotprod (``sdot``) and i8mm (``smmla``) targets.
``test_int8_kernel_instructions`` reads each target's convolution inner loop in the assembly.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import assert_matches, quantize_absmax, run_jit, simulate

from ncnnc.backends.llvm.targets import X86_TRIPLE, is_native
from ncnnc.backends.numpy.conv_ops import _pad_amounts
from ncnnc.core.backend import Target
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.ir import Graph, Weight

EXAMPLES = int(os.environ.get("NCNNC_CONV_EXAMPLES", "14"))
"""Examples per hypothesis test; setting ``NCNNC_CONV_EXAMPLES`` (e.g. 300) also draws new random ones each
run to hunt for bugs, while the default run is derandomized (the same examples every time)."""

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize="NCNNC_CONV_EXAMPLES" not in os.environ,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

SSE_TARGET = Target("x86-64-v2-test", "x86-64-v2, 128-bit vectors (4 int32 lanes)", X86_TRIPLE, "x86-64-v2", "",
                    {"vector_bits": 128, "int8_dot": "generic", "requires": ("sse4.2",)})
"""A 128-bit x86 target, so the host runs the kernels at every vector width the backend tiles for."""

AVX512_GENERIC_TARGET = Target("x86-64-v4-generic-test", "x86-64-v4 without the VNNI int8 kernel", X86_TRIPLE,
                               "x86-64-v4", "", {"vector_bits": 512, "int8_dot": "generic",
                                                 "requires": ("avx512f", "avx512bw")})
"""512-bit vectors with the generic int8 kernel (``host`` picks VNNI on a CPU that has it)."""

AVX2_GENERIC_TARGET = Target("x86-64-v3-generic-test", "x86-64-v3 without the AVX2 int8 kernel", X86_TRIPLE,
                             "x86-64-v3", "+avx2,+fma", {"vector_bits": 256, "int8_dot": "generic",
                                                         "requires": ("avx2", "fma")})
"""256-bit vectors with the generic int8 kernel (``x86-64-v3`` takes the ``vpmaddwd`` one)."""

U = 2.0 ** -24


def _runnable_targets() -> list:
    from ncnnc.backends.llvm.targets import resolve

    found: list = ["host"]
    for t in ("x86-64-v3", SSE_TARGET, AVX512_GENERIC_TARGET, AVX2_GENERIC_TARGET):
        try:
            if is_native(resolve(t)):
                found.append(t)
        except Exception:  # an unknown target name on another build of ncnnc
            continue
    return found


# ---- building layers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvSpec:
    """One convolution layer: geometry, epilogue and (for int8) the scale term."""

    type: str
    c: int
    n: int
    group: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pads: tuple[int, int, int, int]  # pad_left, pad_right, pad_top, pad_bottom (params, may be -233/-234)
    act: int
    act_params: tuple[float, ...]
    bias: bool
    int8: bool
    term: int  # int8_scale_term (0 for fp32)
    pad_value: float = 0.0

    @property
    def cin_g(self) -> int:
        """Input channels per group."""
        return self.c // self.group

    @property
    def out_g(self) -> int:
        """Output channels per group."""
        return self.n // self.group

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        """The output size on an ``h x w`` input (<= 0 when the window does not fit)."""
        ext_w, ext_h = self.dw * (self.kw - 1) + 1, self.dh * (self.kh - 1) + 1
        top, bottom, left, right = _pad_amounts(self.params(), w, h, ext_w, ext_h, self.sw, self.sh)
        return (h + top + bottom - ext_h) // self.sh + 1, (w + left + right - ext_w) // self.sw + 1

    def params(self) -> dict:
        """The layer's params by name."""
        left, right, top, bottom = self.pads
        p = {"num_output": self.n, "kernel_w": self.kw, "kernel_h": self.kh, "dilation_w": self.dw,
             "dilation_h": self.dh, "stride_w": self.sw, "stride_h": self.sh, "pad_left": left, "pad_right": right,
             "pad_top": top, "pad_bottom": bottom, "pad_value": self.pad_value, "bias_term": int(self.bias),
             "weight_data_size": self.n * self.cin_g * self.kh * self.kw, "activation_type": self.act,
             "activation_params": list(self.act_params)}
        if self.type == "ConvolutionDepthWise":
            p["group"] = self.group
        if self.int8:
            p["int8_scale_term"] = self.term
        return p


def add_conv(b: GraphBuilder, src: str, spec: ConvSpec, rng: np.random.Generator, name: str,
             input_scale: float = 0.0, top_scale: float = 0.0, weight: np.ndarray | None = None) -> str:
    """Append ``spec`` reading ``src``; int8 layers get int8 weights and scales as the quantizer writes them."""
    size = spec.n * spec.cin_g * spec.kh * spec.kw
    weights: dict = {}
    if spec.int8:
        q = rng.integers(-127, 128, size) if weight is None else weight
        weights["weight"] = Weight(np.asarray(q, np.int8), "int8")
        count = (spec.group if spec.term % 100 == 1 else 1) if spec.type == "ConvolutionDepthWise" else spec.n
        ws = rng.uniform(20.0, 400.0, count).astype(np.float32)
        if count > 2 and rng.random() < 0.2:
            ws[rng.integers(count)] = 0.0  # a channel of zero weights: ncnn's scale_in is 0 there
        weights["weight_int8_scales"] = Weight(ws, "raw")
        weights["bottom_int8_scales"] = Weight(np.array([input_scale or rng.uniform(5, 60)], np.float32), "raw")
        if spec.term > 100:
            weights["top_int8_scales"] = Weight(np.array([top_scale or rng.uniform(3, 40)], np.float32), "raw")
    else:
        weights["weight"] = rng.normal(0, 0.5, size).astype(np.float32) if weight is None else weight
    if spec.bias:
        weights["bias"] = rng.normal(0, 0.5 if not spec.int8 else 1.0, spec.n).astype(np.float32)
    return b.layer(spec.type, [src], spec.params(), weights, name=name)


# ---- strategies -----------------------------------------------------------------------------------------

ACTIVATIONS = (0, 1, 2, 3, 4, 6)


@st.composite
def activations(draw) -> tuple[int, tuple[float, ...]]:
    """A supported fused activation and its params."""
    act = draw(st.sampled_from(ACTIVATIONS))
    if act == 2:
        return act, (draw(st.sampled_from([0.1, 0.0, -0.3, 1.5])),)
    if act == 3:
        lo = draw(st.sampled_from([-1.0, 0.0, -0.25]))
        return act, (lo, lo + draw(st.sampled_from([0.5, 1.0, 6.0])))
    if act == 6:
        return act, draw(st.sampled_from([(0.2, 0.5), (1 / 6, 0.5), (0.5, 0.25)]))
    return act, ()


@st.composite
def pad_params(draw, kh: int, kw: int) -> tuple[int, int, int, int]:
    """pad_left, pad_right, pad_top, pad_bottom: zero, symmetric, asymmetric or a SAME mode."""
    mode = draw(st.sampled_from(["zero", "sym", "asym", "same_upper", "same_lower"]))
    if mode == "zero":
        return 0, 0, 0, 0
    if mode == "sym":
        return kw // 2, kw // 2, kh // 2, kh // 2
    if mode == "asym":
        return tuple(draw(st.integers(0, 3)) for _ in range(4))
    v = -233 if mode == "same_upper" else -234
    return v, v, v, v


@st.composite
def conv_specs(draw, kind: str, int8: bool) -> tuple[ConvSpec, int, int]:
    """A ``(spec, h, w)`` whose output is not empty. ``kind``: ``conv``, ``group`` or ``dw``."""
    kh = draw(st.sampled_from([1, 2, 3, 5]))
    kw = draw(st.sampled_from([1, 3, 5])) if draw(st.booleans()) else kh
    sh = draw(st.sampled_from([1, 1, 2]))
    sw = sh if draw(st.booleans()) else draw(st.sampled_from([1, 2]))
    dh = draw(st.sampled_from([1, 1, 2]))
    dw = dh if draw(st.booleans()) else draw(st.sampled_from([1, 2]))
    if kind == "conv":
        typ, group = "Convolution", 1
        c, n = draw(st.integers(1, 21)), draw(st.integers(1, 37))
    elif kind == "group":
        typ, group = "ConvolutionDepthWise", draw(st.integers(2, 4))
        c, n = group * draw(st.integers(1, 7)), group * draw(st.integers(1, 9))
        if c == group and n == group:
            n = 2 * group  # a channel multiplier: grouped, not depthwise
    else:
        typ = "ConvolutionDepthWise"
        c = n = group = draw(st.integers(2, 41))
    act, act_params = draw(activations())
    if int8:
        term = 2 if typ == "Convolution" else draw(st.sampled_from([1, 2]))
        term += 100 * draw(st.booleans())
    else:
        term = 0
    pad_value = draw(st.sampled_from([0.0, 0.0, 0.5])) if not int8 else 0.0
    spec = ConvSpec(typ, c, n, group, kh, kw, sh, sw, dh, dw, draw(pad_params(kh, kw)), act, act_params,
                    draw(st.booleans()), int8, term, pad_value)
    h, w = draw(st.integers(1, 13)), draw(st.integers(1, 13))
    oh, ow = spec.out_hw(h, w)
    if oh <= 0 or ow <= 0:  # grow the input until the window fits
        ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        h, w = max(h, ext_h), max(w, ext_w)
    return spec, h, w


# ---- checking -------------------------------------------------------------------------------------------


def _lipschitz(spec: ConvSpec) -> float:
    if spec.act == 2:
        return max(1.0, abs(spec.act_params[0]))
    if spec.act == 6:
        alpha, beta = spec.act_params
        return 1.0 + max(abs(beta), abs(1 - beta)) + abs(alpha)
    return 1.0


def fp32_bound(spec: ConvSpec, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Per-output bound on |llvm - numpy| of an fp32 general convolution (see the module docstring)."""
    b = GraphBuilder()
    src = b.input("data", x.shape)
    plain = replace(spec, act=0, act_params=(), bias=False, pad_value=abs(spec.pad_value))
    b.layer(plain.type, [src], plain.params(), {"weight": np.abs(weight)}, name="out")
    s = simulate(b.build(), {"data": np.abs(x)})["out"].astype(np.float64)
    k = spec.cin_g * spec.kh * spec.kw
    pre = s + (0.0 if bias is None else np.abs(bias).reshape(-1, 1, 1))
    return _lipschitz(spec) * (2 * k * U * s * 1.01 + 4 * U * pre) + 1e-30


def sigmoid_bound(spec: ConvSpec) -> float:
    """The one tolerance of an otherwise bit-identical layer with a fused sigmoid: the kernels call the C
    library's ``expf``, numpy its own ``exp``, and the two may differ by an ulp.  A float output may be a
    few ulps off (``check`` allows 4 ulps in any bounded output); requantized, one int8 step."""
    return 1.0 if spec.term > 100 else 0.0


def check(graph: Graph, inputs: dict[str, np.ndarray], target, bounds: dict[str, np.ndarray] | None = None) -> None:
    """The JIT on ``target`` against the simulation: bit-identical, or within per-element ``bounds``."""
    want = simulate(graph, inputs)
    got = run_jit(graph, inputs, target)
    if not bounds:
        assert_matches(got, want)
        return
    assert set(got) == set(want)
    for name in want:
        g, w = got[name].astype(np.float64), want[name].astype(np.float64)
        assert g.shape == w.shape, (name, g.shape, w.shape)
        if name not in bounds:
            assert ((g == w) | (np.isnan(g) & np.isnan(w))).all(), name
            continue
        err = np.abs(g - w)
        slack = bounds[name] + 4 * np.spacing(np.abs(w).astype(np.float32)).astype(np.float64)
        assert (err <= slack).all(), f"{name}: err {err.max()} > bound, {int((err > slack).sum())} of {g.size}"


def _input(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.normal(0, 1.5, shape).astype(np.float32)
    if x.size > 4:  # values the int8 input quantization saturates (x * scale beyond +-127)
        x.ravel()[rng.integers(x.size)] = 100.0
        x.ravel()[rng.integers(x.size)] = -100.0
    return x


def _general(spec: ConvSpec) -> bool:
    return not (spec.type == "ConvolutionDepthWise" and spec.cin_g == 1 and spec.out_g == 1)


# ---- single layers --------------------------------------------------------------------------------------


def _run_single(spec: ConvSpec, h: int, w: int, seed: int, target) -> None:
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    src = b.input("data", (spec.c, h, w))
    add_conv(b, src, spec, rng, "out")
    graph = b.build()
    x = _input(rng, (spec.c, h, w))
    bounds = None
    if not spec.int8 and _general(spec):
        layer = graph.find("out")
        bounds = {"out": fp32_bound(spec, x, layer.weight("weight"), layer.weight("bias") if spec.bias else None)}
    elif spec.act == 4:
        bounds = {"out": sigmoid_bound(spec)}
    check(graph, {"data": x}, target, bounds)


_targets = st.sampled_from([0, 0, 1, 1, 2, 3, 4])


def _target(i: int):
    found = _runnable_targets()
    return found[i % len(found)]


@SETTINGS
@given(case=conv_specs("conv", True), seed=st.integers(0, 2**16), t=_targets)
def test_int8_convolution(case, seed, t):
    spec, h, w = case
    _run_single(spec, h, w, seed, _target(t))


@SETTINGS
@given(case=conv_specs("group", True), seed=st.integers(0, 2**16), t=_targets)
def test_int8_grouped_convolution(case, seed, t):
    spec, h, w = case
    _run_single(spec, h, w, seed, _target(t))


@SETTINGS
@given(case=conv_specs("dw", True), seed=st.integers(0, 2**16), t=_targets)
def test_int8_depthwise(case, seed, t):
    spec, h, w = case
    _run_single(spec, h, w, seed, _target(t))


@SETTINGS
@given(case=conv_specs("conv", False), seed=st.integers(0, 2**16), t=_targets)
def test_fp32_convolution_within_summation_order_bound(case, seed, t):
    spec, h, w = case
    _run_single(spec, h, w, seed, _target(t))


@SETTINGS
@given(case=conv_specs("group", False), seed=st.integers(0, 2**16), t=_targets)
def test_fp32_grouped_convolution_within_summation_order_bound(case, seed, t):
    spec, h, w = case
    _run_single(spec, h, w, seed, _target(t))


@SETTINGS
@given(case=conv_specs("dw", False), seed=st.integers(0, 2**16), t=_targets)
def test_fp32_depthwise_bit_identical(case, seed, t):
    spec, h, w = case
    _run_single(spec, h, w, seed, _target(t))


@st.composite
def dot_specs(draw) -> tuple[ConvSpec, int, int]:
    """int8 layers the per-target kernels take: plain convolutions, and grouped ones whose input channels per
    group are a multiple of 2 (AVX2), 4 (VNNI, sdot) or 8 (smmla), or of none (the generic kernel)."""
    if draw(st.booleans()):
        return draw(conv_specs("conv", True))
    spec, h, w = draw(conv_specs("group", True))
    cin_g = draw(st.sampled_from([2, 4, 6, 8, 12, 16]))
    return replace(spec, c=spec.group * cin_g), h, w


@SETTINGS
@given(case=dot_specs(), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("target", ["x86-64-v4-vnni", "x86-64-v3"])
def test_int8_dot_kernels(target, case, seed):
    """The ``vpdpbusd`` kernel (u8 input, +128 compensated in int32) and the ``vpmaddwd`` one (int16 input
    and weights): bit-identical as well."""
    from ncnnc.backends.llvm.targets import resolve

    resolved = resolve(target)
    if not is_native(resolved):
        pytest.skip(f"this CPU cannot run {target}")
    spec, h, w = case
    _run_single(spec, h, w, seed, resolved)


@pytest.mark.parametrize("target", ["x86-64-v4-vnni", "x86-64-v3"])
def test_int8_dot_kernels_split_rows_among_threads(target):
    """The tiled kernels are parallel steps: every thread count gives the same bytes."""
    from ncnnc.backends.llvm.jit import jit
    from ncnnc.backends.llvm.targets import resolve

    if not is_native(resolve(target)):
        pytest.skip(f"this CPU cannot run {target}")
    rng = np.random.default_rng(5)
    spec = ConvSpec("Convolution", 24, 40, 1, 3, 3, 1, 1, 1, 1, (1, 1, 1, 1), 1, (), True, True, 2)
    b = GraphBuilder()
    add_conv(b, b.input("data", (24, 11, 13)), spec, rng, "out")
    model = jit(b.build(), target, use_cache=False)
    x = _input(rng, (24, 11, 13))
    one = model.run_one([x], threads=1)
    for threads in (2, 3, 7):
        np.testing.assert_array_equal(model.run_one([x], threads=threads)[0], one[0])


def _kernel_loops(assembly: str, kind: str = "conv") -> list[str]:
    """The basic blocks (assembly text) of the functions of ``kind`` steps (``PREFIX_kN_conv_LAYER``)."""
    import re

    blocks: list[str] = []
    for m in re.finditer(rf"^(\w+_k\d+_{kind}_\w*):\n(.*?)^\.Lfunc_end", assembly, re.S | re.M):
        blocks += re.split(r"^\.LBB\w+:", m.group(2), flags=re.M)
    return blocks


INSTRUCTIONS = {"x86-64-v4-vnni": "vpdpbusd", "x86-64-v3": "vpmaddwd", "armv8.2-dotprod": "sdot",
                "armv8.6-i8mm": "smmla"}
"""The instruction each target's int8 convolution inner loop is made of."""

GENERIC_MULTIPLY = r"^\s+(vpmulld|mul|mla|smull2?|smlal2?)\s+[vxyz]"
"""What the generic kernel multiplies with (int32 lane multiplies, widening ones on aarch64)."""


@pytest.mark.parametrize("target", sorted(INSTRUCTIONS))
def test_int8_kernel_instructions(target):
    """``build(..., assembly=True)`` (what ``--emit-asm`` writes) of a small int8 convolution: the convolution's
    hottest block is a run of the target's dot-product instruction (one per accumulator of the register tile)
    with no generic multiply; a target that names the strategy but whose features lack the instruction gets the
    generic kernel (LLVM would abort on the intrinsic); ``armv8`` (plain NEON) never uses ``sdot``."""
    import re

    from ncnnc.backends.llvm import build
    from ncnnc.backends.llvm.targets import resolve

    spec = ConvSpec("Convolution", 16, 32, 1, 3, 3, 1, 1, 1, 1, (1, 1, 1, 1), 1, (), True, True, 2)
    b = GraphBuilder()
    add_conv(b, b.input("data", (16, 12, 12)), spec, np.random.default_rng(0), "out")
    graph = b.build()
    instruction = INSTRUCTIONS[target]
    resolved = resolve(target)
    blocks = _kernel_loops(build(graph, resolved, use_cache=False, assembly=True).assembly)
    counts = [len(re.findall(rf"^\s+{instruction}\s", block, re.M)) for block in blocks]
    hot = blocks[counts.index(max(counts))]
    print(f"{target}: {max(counts)} {instruction} in the conv kernel's hottest block")
    assert max(counts) >= 8
    assert not re.search(GENERIC_MULTIPLY, hot, re.M), hot
    lacking = Target(f"{target}-lacking", "", resolved.triple, resolved.cpu,
                     ",".join(f for f in resolved.features.split(",") if f not in ("+avx512vnni", "+avx2", "+dotprod",
                                                                                     "+i8mm")),
                     {**resolved.options})
    if resolved.cpu not in ("x86-64-v3", "x86-64-v4"):  # a CPU name that implies the feature: still not trusted
        lacking = replace(lacking, cpu="generic")
    text = build(graph, lacking, use_cache=False, assembly=True).assembly
    assert not re.search(rf"^\s+{instruction}\s", text, re.M)
    if target == "armv8.2-dotprod":
        assert not re.search(r"^\s+sdot\s", build(graph, "armv8", use_cache=False, assembly=True).assembly, re.M)


# ---- int8 input from a requantizing convolution; outputs written into a Concat -------------------------


@st.composite
def chains(draw) -> tuple[ConvSpec, ConvSpec, int, int]:
    """A requantizing int8 layer and an int8 layer reading its int8 output."""
    first, h, w = draw(conv_specs(draw(st.sampled_from(["conv", "group", "dw"])), True))
    first = replace(first, term=first.term % 100 + 100)
    if first.act == 4:  # an expf ulp could move one int8 value, and the second layer would spread it
        first = replace(first, act=1, act_params=())
    oh, ow = first.out_hw(h, w)
    kind = draw(st.sampled_from(["conv", "group", "dw"]))
    second, _, _ = draw(conv_specs(kind, True))
    if kind == "dw":
        second = replace(second, c=first.n, n=first.n, group=first.n)
        if first.n == 1:
            second = replace(second, type="Convolution", group=1, term=2)
    elif kind == "group" and first.n % second.group == 0 and first.n > second.group:
        second = replace(second, c=first.n, n=second.group * (second.out_g or 1))
    else:
        second = replace(second, type="Convolution", c=first.n, group=1, term=2 + 100 * (second.term > 100))
    if min(second.out_hw(oh, ow)) <= 0:  # shrink the second window to the first layer's output
        second = replace(second, kh=min(second.kh, oh), kw=min(second.kw, ow), dh=1, dw=1)
    return first, second, h, w


@SETTINGS
@given(case=chains(), seed=st.integers(0, 2**16), t=_targets)
def test_int8_input_from_requantizing_conv(case, seed, t):
    first, second, h, w = case
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    src = b.input("data", (first.c, h, w))
    mid = add_conv(b, src, first, rng, "first")
    add_conv(b, mid, second, rng, "out")
    graph = b.build()
    graph.find("first").weights["top_int8_scales"] = Weight(
        graph.find("out").weights["bottom_int8_scales"].data.copy(), "raw")
    check(graph, {"data": _input(rng, (first.c, h, w))}, _target(t),
          {"out": sigmoid_bound(second)} if second.act == 4 else None)


@st.composite
def concat_cases(draw) -> tuple[ConvSpec, ConvSpec, bool, int, int]:
    """Two convolutions of one input whose outputs are concatenated (same output size); whether an int8
    convolution reads the concatenation."""
    int8, requant = draw(st.booleans()), draw(st.booleans())
    spec, h, w = draw(conv_specs(draw(st.sampled_from(["conv", "group", "dw"])), int8))
    if int8:
        spec = replace(spec, term=spec.term % 100 + 100 * requant)
        if spec.act == 4:  # sigmoid's expf ulp is tested on single layers
            spec = replace(spec, act=3, act_params=(-1.0, 1.0))
    n2 = draw(st.integers(1, 19))
    other = replace(spec, n=n2 * spec.group, act=draw(st.sampled_from(ACTIVATIONS[:2])), act_params=(),
                    bias=not spec.bias)
    if other.type == "ConvolutionDepthWise" and other.c == other.n == other.group and spec.c != spec.n:
        other = replace(other, n=2 * other.n)  # both grouped, or both depthwise, or a mix: any is fine
    return spec, other, int8 and requant and draw(st.booleans()), h, w


@SETTINGS
@given(case=concat_cases(), seed=st.integers(0, 2**16), t=_targets)
def test_outputs_written_into_concat(case, seed, t):
    """Two convolutions written in place into one Concat (the second at an unaligned channel offset:
    strided views); requantized parts are int8 and an int8 convolution may read the concatenation."""
    spec, other, consumer, h, w = case
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    src = b.input("data", (spec.c, h, w))
    scale = 11.0
    a = add_conv(b, src, spec, rng, "a", top_scale=scale)
    c = add_conv(b, src, other, rng, "b", top_scale=scale)
    b.layer("Concat", [a, c], {"axis": 0}, name="cat")
    if consumer:
        reader = ConvSpec("Convolution", spec.n + other.n, 5, 1, 3, 1, 1, 1, 1, 1, (0, 0, 1, 1), 0, (), True,
                          True, 2)
        add_conv(b, "cat", reader, rng, "out", input_scale=scale)
    graph = b.build()
    x = _input(rng, (spec.c, h, w))
    bounds = None
    if not spec.int8:
        oh, ow = spec.out_hw(h, w)
        parts = []
        for name, sp in (("a", spec), ("b", other)):
            layer = graph.find(name)
            parts.append(fp32_bound(sp, x, layer.weight("weight"), layer.weight("bias") if sp.bias else None)
                         if _general(sp) else np.zeros((sp.n, oh, ow)))
        bounds = {"cat": np.concatenate(parts)}
    check(graph, {"data": x}, _target(t), bounds)


# ---- 1-D / 2-D blobs, and ncnn's InnerProduct form -------------------------------------------------------


@pytest.mark.parametrize("shape, params", [
    ((6, 17), {"kernel_w": 3, "pad_left": 1}),
    ((6, 17), {"kernel_w": 3, "kernel_h": 2, "stride_w": 2, "pad_left": -234, "pad_right": -234, "pad_top": -234,
               "pad_bottom": -234, "pad_value": 2.0}),
    ((17,), {"kernel_w": 3, "kernel_h": 1, "pad_left": 2, "pad_right": 0, "pad_top": 0, "pad_bottom": 0}),
    ((10,), {"kernel_w": 1}),
    ((10,), {"kernel_w": 1, "pad_left": 1, "stride_w": 2}),  # InnerProduct form: pads and stride do not apply
])
def test_fp32_convolution_of_1d_and_2d_blobs(shape, params):
    rng = np.random.default_rng(len(shape) * 10 + len(params))
    n = 3
    cin = 1 if params["kernel_w"] > 1 else shape[0]
    size = n * cin * params["kernel_w"] * params.get("kernel_h", params["kernel_w"])
    b = GraphBuilder()
    src = b.input("data", shape)
    b.layer("Convolution", [src], {"num_output": n, "bias_term": 1, "weight_data_size": size, **params},
            {"weight": rng.normal(0, 1, size), "bias": rng.normal(0, 1, n)}, name="out")
    graph = b.build()
    x = rng.normal(0, 1, shape).astype(np.float32)
    assert_matches(run_jit(graph, {"data": x}), simulate(graph, {"data": x}), atol=1e-5, rtol=1e-5)


def test_1d_blob_with_top_bottom_pads_is_refused_or_exact():
    """ncnn pads a 1-D blob along w only (the simulation too); shape inference adds top/bottom pads to its
    height, so the backend refuses the layer rather than write rows that do not exist.  Once the two agree,
    the layer must compile and match."""
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    src = b.input("data", (17,))
    b.layer("Convolution", [src], {"num_output": 2, "kernel_w": 3, "kernel_h": 1, "pad_left": 1, "weight_data_size": 6},
            {"weight": rng.normal(0, 1, 6)}, name="out")
    graph = b.build()
    x = rng.normal(0, 1, (17,)).astype(np.float32)
    from ncnnc.core.errors import UnsupportedError

    try:
        got = run_jit(graph, {"data": x})
    except UnsupportedError as e:
        assert "shape inference says" in str(e)
        return
    assert_matches(got, simulate(graph, {"data": x}), atol=1e-5, rtol=1e-5)


# ---- a graph through the real quantizer -----------------------------------------------------------------


def test_quantized_chain_through_the_quantizer():
    """Conv(requantize) -> Split -> {ConvDW 8=101 -> Conv, Conv(leaky)} -> Concat, quantized by
    :func:`ncnnc.plugins.quantizer.quantize` from a table (as ``tests/backends/test_numpy_int8.py``)."""
    rng = np.random.default_rng(4)
    b = GraphBuilder()
    x = b.input("data", (8, 11, 9))

    def conv(src, cin, n, k, stride=1, group=1, act=1, act_params=()):
        size = n * cin // group * k * k
        params = {"num_output": n, "kernel_w": k, "stride_w": stride, "pad_left": k // 2, "bias_term": 1,
                  "weight_data_size": size, "activation_type": act, "activation_params": list(act_params)}
        if group > 1:
            params["group"] = group
        return b.layer("ConvolutionDepthWise" if group > 1 else "Convolution", [src], params,
                       {"weight": rng.normal(0, 0.3, size), "bias": rng.normal(0, 0.3, n)}, name=f"l{len(b.layers)}")

    a = conv(x, 8, 13, 3)
    s1, s2 = b.layer("Split", [a], outputs=2)
    d = conv(conv(s1, 13, 13, 3, stride=2, group=13), 13, 6, 1, act=0)
    e = conv(s2, 13, 7, 3, stride=2, act=2, act_params=(0.1,))
    b.layer("Concat", [d, e], name="out")
    graph = b.build()
    data = rng.normal(0, 1, (8, 11, 9)).astype(np.float32)
    qgraph = quantize_absmax(graph, [{"data": data}])
    terms = [layer.p("int8_scale_term") for layer in qgraph.layers if "int8_scale_term" in layer.params]
    assert terms == [102, 101, 2, 2]
    for target in _runnable_targets():
        check(qgraph, {"data": rng.normal(0, 1.5, (8, 11, 9)).astype(np.float32)}, target)


# ---- armv8 objects under qemu against the host JIT ------------------------------------------------------

ARM_CASES = [  # (spec, h, w); chains and a Concat are added by _arm_graph
    (ConvSpec("Convolution", 13, 21, 1, 3, 3, 1, 1, 1, 1, (1, 1, 1, 1), 1, (), True, True, 102), 9, 7),
    (ConvSpec("Convolution", 5, 6, 1, 5, 3, 2, 1, 1, 2, (2, 0, 1, 3), 6, (0.2, 0.5), False, True, 2), 11, 8),
    (ConvSpec("ConvolutionDepthWise", 12, 18, 3, 3, 1, 1, 2, 1, 1, (-233,) * 4, 2, (0.1,), True, True, 1), 7, 10),
    (ConvSpec("ConvolutionDepthWise", 19, 19, 19, 3, 3, 2, 2, 1, 1, (-234,) * 4, 3, (0.0, 6.0), True, True, 101), 9, 8),
    (ConvSpec("ConvolutionDepthWise", 10, 10, 10, 5, 3, 1, 1, 2, 1, (2, 1, 0, 3), 0, (), False, True, 2), 12, 6),
    (ConvSpec("Convolution", 7, 9, 1, 3, 2, 1, 2, 1, 1, (0, 1, 1, 0), 3, (-1.0, 1.0), True, False, 0, 0.5), 8, 9),
    (ConvSpec("ConvolutionDepthWise", 11, 11, 11, 3, 3, 1, 1, 1, 1, (1, 1, 1, 1), 6, (0.2, 0.5), True, False, 0), 6, 7),
    (ConvSpec("ConvolutionDepthWise", 6, 9, 3, 1, 3, 2, 2, 1, 2, (0, 0, 0, 0), 1, (), True, False, 0), 5, 13),
]


def _arm_graph(seed: int = 11) -> tuple[Graph, dict[str, np.ndarray]]:
    """Every ARM case as one independent branch of one graph (one link and one qemu run for all), plus an
    int8 chain and two requantized layers written into a Concat that an int8 convolution reads."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    inputs = {}
    for i, (spec, h, w) in enumerate(ARM_CASES):
        src = b.input(f"x{i}", (spec.c, h, w))
        inputs[src] = _input(rng, (spec.c, h, w))
        add_conv(b, src, spec, rng, f"out{i}")
    src = b.input("xc", (9, 10, 11))
    inputs[src] = _input(rng, (9, 10, 11))
    first = ConvSpec("Convolution", 9, 14, 1, 3, 3, 2, 2, 1, 1, (1, 1, 1, 1), 1, (), True, True, 102)
    part = ConvSpec("ConvolutionDepthWise", 14, 14, 14, 3, 3, 1, 1, 1, 1, (1, 1, 1, 1), 1, (), True, True, 101)
    other = ConvSpec("Convolution", 14, 5, 1, 1, 1, 1, 1, 1, 1, (0, 0, 0, 0), 0, (), False, True, 102)
    reader = ConvSpec("Convolution", 19, 8, 1, 3, 3, 1, 1, 1, 1, (1, 1, 1, 1), 2, (0.1,), True, True, 2)
    mid = add_conv(b, src, first, rng, "first", top_scale=13.0)
    a = add_conv(b, mid, part, rng, "part", input_scale=13.0, top_scale=9.0)
    c = add_conv(b, mid, other, rng, "other", input_scale=13.0, top_scale=9.0)
    cat = b.layer("Concat", [a, c], {"axis": 0}, name="cat")
    add_conv(b, cat, reader, rng, "outc", input_scale=9.0)
    graph = b.build()
    return graph, inputs


@pytest.mark.parametrize("target", ["armv8", "armv8.2-dotprod", "armv8.6-i8mm"])
def test_armv8_objects_match_the_host_jit_bit_for_bit(target):
    """int8 and fp32 kernels compiled for aarch64, linked and run under qemu: identical to the host JIT
    (the same IR summation order at 4 lanes as at 16), and int8/depthwise identical to the simulation."""
    import shutil

    native = pytest.importorskip("ncnnc.backends.llvm.native")
    if not hasattr(native, "run_native"):
        pytest.skip("ncnnc.backends.llvm.native has no run_native yet")
    missing = [tool for tool in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing")
        pytest.skip(f"{', '.join(missing)} missing")
    from ncnnc.backends.llvm import build

    graph, inputs = _arm_graph()
    built = build(graph, target, use_cache=False)
    (arm,) = native.run_native(built, [inputs])
    host = run_jit(graph, inputs)
    assert_matches(arm, host)
    sim = simulate(graph, inputs)
    exact = [f"out{i}" for i, (spec, _, _) in enumerate(ARM_CASES) if spec.int8 or not _general(spec)] + ["outc"]
    assert_matches({k: arm[k] for k in exact}, {k: sim[k] for k in exact})


ARM_EXAMPLES = int(os.environ.get("NCNNC_ARM_EXAMPLES", "3"))
"""Hypothesis batches per armv8 dot-product target (each batch: one link and one qemu run)."""


@st.composite
def arm_batches(draw) -> list[tuple[ConvSpec, int, int]]:
    """Eight int8 layers for one qemu run: plain convolutions (any channel count), grouped ones with 8k input
    channels per group (``smmla``), 4k (``sdot``, and i8mm's fallback to it) or other (generic), depthwise."""
    cases = []
    for kind in ("conv", "conv", "conv", "conv", "group8", "group4", "group", "dw"):
        spec, h, w = draw(conv_specs(kind if kind in ("conv", "dw") else "group", True))
        if kind in ("group8", "group4"):
            spec = replace(spec, c=spec.group * (8 if kind == "group8" else 4) * draw(st.integers(1, 2)))
        if spec.act == 4:  # the two C libraries' expf may differ by an ulp: sigmoid is tested on the host
            spec = replace(spec, act=1, act_params=())
        cases.append((spec, h, w))
    return cases


@settings(max_examples=ARM_EXAMPLES, deadline=None, derandomize="NCNNC_CONV_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(cases=arm_batches(), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("target", ["armv8.2-dotprod", "armv8.6-i8mm"])
def test_armv8_int8_dot_kernels_on_drawn_layers(target, cases, seed):
    """Drawn int8 layers as one multi-input graph on the ``sdot`` / ``smmla`` targets under qemu: bit-identical
    to the simulation of ncnn's arm arithmetic (the int32 sums are exact on every target; an arm depthwise
    layer divides where x86 estimates the reciprocal), with one thread and with three."""
    import shutil

    native = pytest.importorskip("ncnnc.backends.llvm.native")
    missing = [tool for tool in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing")
        pytest.skip(f"{', '.join(missing)} missing")
    from ncnnc.backends.llvm import build

    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    inputs = {}
    for i, (spec, h, w) in enumerate(cases):
        src = b.input(f"x{i}", (spec.c, h, w))
        inputs[src] = _input(rng, (spec.c, h, w))
        add_conv(b, src, spec, rng, f"out{i}")
    graph = b.build()
    built = build(graph, target, use_cache=False)
    (arm,) = native.run_native(built, [inputs])
    assert_matches(arm, simulate(graph, inputs, family="arm"))
    (threaded,) = native.run_native(built, [inputs], threads=3)  # the tiled kernels split their rows
    assert_matches(threaded, arm)


@pytest.mark.parametrize("target", ["host", "x86-64-v4-vnni", "x86-64-v3"])
def test_int8_depthwise_pair_instructions(target):
    """x86 depthwise layers multiply a pair of taps per instruction: the hottest block of a 3x3 depthwise
    kernel is made of 16-bit pair dots (``vpdpwssd``, or ``vpmaddwd``, which LLVM also uses for it where it
    tunes for a CPU without fast VNNI or when an accumulator starts at zero), with no 16-bit multiplies
    (the other targets' kernel) left in it."""
    import re

    from ncnnc.backends.llvm import build
    from ncnnc.backends.llvm.targets import resolve

    if not resolve(target).triple.startswith("x86_64"):
        pytest.skip("the host is not an x86-64")
    spec = ConvSpec("ConvolutionDepthWise", 48, 48, 48, 3, 3, 1, 1, 1, 1, (1, 1, 1, 1), 3, (0.0, 6.0), True, True,
                    101)
    b = GraphBuilder()
    add_conv(b, b.input("data", (48, 12, 12)), spec, np.random.default_rng(0), "out")
    blocks = _kernel_loops(build(b.build(), target, use_cache=False, assembly=True).assembly, "dwconv")
    counts = [len(re.findall(r"^\s+(vpdpwssd|vpmaddwd)\s", block, re.M)) for block in blocks]
    hot = blocks[counts.index(max(counts))]
    assert max(counts) >= 30  # 3 pixels x 5 pairs x 2 halves
    assert not re.search(r"^\s+vpmullw\s", hot, re.M), hot
