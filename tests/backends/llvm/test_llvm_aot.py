"""Ahead-of-time output of the LLVM backend: model.o + model.h per target, linked with the C driver and run
natively (aarch64 under qemu), bit for bit against the host JIT and the numpy simulation.

Tests that need the aarch64 cross toolchain fail when ``CI`` is set and it is missing (``.ci/run``
installs it), and skip only outside CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncnnc.backends.llvm import build, jit
from ncnnc.backends.llvm.aot import AOT_NAMES, header_text, write_aot
from ncnnc.backends.llvm.native import DRIVER, run_native
from ncnnc.backends.llvm.targets import ARM_TRIPLE, X86_TRIPLE, is_native, resolve
from ncnnc.backends.numpy.interpreter import Interpreter
from ncnnc.core.backend import Target
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.cli import main
from ncnnc.core.errors import NcnncError
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph
from ncnnc.core.registry import registry

from .harness import quantize_absmax

ROOT = Path(__file__).resolve().parents[3]
E_MACHINE = {"aarch64": 0xB7, "x86_64": 0x3E}
TARGETS = ["armv8", "armv8.2-dotprod", "x86-64-v3", "host"]


def require_runnable(target: Target, require_cross) -> None:
    """Cross tools for aarch64; for x86 targets the host CPU must run them (the refusal is tested below)."""
    if target.triple.startswith("aarch64"):
        require_cross()
    elif not is_native(target):
        pytest.skip(f"this CPU cannot run {target.name}")


def int8_chain(seed: int = 4) -> Graph:
    """A small quantized graph: Conv(requantize) -> Split -> {ConvDW(requantize) -> Conv, Conv(leaky)} ->
    Concat -> int8 InnerProduct, as tests/backends/test_numpy_int8.py's chain."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("data", (8, 11, 9))

    def conv(src, cin, n, k, stride=1, group=1, act=1):
        size = n * cin // group * k * k
        params = {"num_output": n, "kernel_w": k, "stride_w": stride, "pad_left": k // 2, "bias_term": 1,
                  "weight_data_size": size, "activation_type": act}
        if group > 1:
            params["group"] = group
        weights = {"weight": rng.normal(0, 0.3, size), "bias": rng.normal(0, 0.3, n)}
        typ = "ConvolutionDepthWise" if group > 1 else "Convolution"
        return b.layer(typ, [src], params, weights, name=f"l{len(b.layers)}")

    a = conv(x, 8, 12, 3)
    s1, s2 = b.layer("Split", [a], outputs=2)
    d = conv(conv(s1, 12, 12, 3, stride=2, group=12), 12, 6, 1, act=0)
    e = conv(s2, 12, 6, 3, stride=2, act=2)
    b.layers[-1].params["activation_params"] = [0.1]
    cat = b.layer("Concat", [d, e], name="cat")
    b.layer("InnerProduct", [cat], {"num_output": 5, "bias_term": 1, "weight_data_size": 5 * 12 * 6 * 5},
            {"weight": rng.normal(0, 0.05, 5 * 12 * 6 * 5), "bias": rng.normal(0, 0.1, 5)}, name="fc")
    graph = b.build()
    return quantize_absmax(graph, [{"data": rng.normal(0, 1, (8, 11, 9)).astype(np.float32)}])


@pytest.fixture(scope="module")
def graph() -> Graph:
    return int8_chain()


@pytest.fixture(scope="module")
def images() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    return [{"data": rng.normal(0, 1.5, (8, 11, 9)).astype(np.float32)} for _ in range(5)]


@pytest.fixture(scope="module")
def reference(graph, images) -> np.ndarray:
    """The host JIT's outputs, checked bit for bit against the numpy simulation."""
    batch = np.stack([i["data"] for i in images])
    out_name = graph.outputs[0]
    got = jit(graph, use_cache=False)({"data": batch})[out_name]
    sim = np.asarray(Interpreter(graph).run({"data": batch})[out_name], np.float32)
    np.testing.assert_array_equal(got, sim)
    return got


def _elf_machine(code: bytes) -> int:
    assert code[:4] == b"\x7fELF", code[:4]
    assert code[4] == 2 and code[5] == 1  # 64-bit, little-endian
    assert int.from_bytes(code[16:18], "little") == 1  # ET_REL: a relocatable object
    return int.from_bytes(code[18:20], "little")


@pytest.mark.parametrize("name", TARGETS)
def test_object_and_header_per_target(graph, name, tmp_path):
    target = resolve(name)
    built = build(graph, target, assembly=True, llvm_ir=True, use_cache=False)
    paths = write_aot(built, tmp_path)
    assert sorted(p.name for p in paths) == sorted(AOT_NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(AOT_NAMES)  # no temporary left behind
    code = (tmp_path / "model.o").read_bytes()
    assert _elf_machine(code) == E_MACHINE[target.triple.split("-")[0]]
    assert "model_run" in (tmp_path / "model.s").read_text()
    assert "define void @model_run" in (tmp_path / "model.ll").read_text()
    header = (tmp_path / "model.h").read_text()
    assert 'extern "C"' in header and "size_t model_workspace_size(void);" in header
    assert f"#define MODEL_WORKSPACE_SIZE {built.workspace_size}" in header
    assert "#define MODEL_INPUT0_SIZE 792" in header and '"data" (c=8, h=11, w=9)' in header
    out_name = built.outputs[0][0]
    assert f"[0] {out_name}" in header
    for compiler in (["cc", "-std=c99"], ["cc", "-x", "c++"]):
        subprocess.run([*compiler, "-Wall", "-Werror", "-fsyntax-only", str(tmp_path / "model.h")], check=True)


@pytest.mark.parametrize("name", TARGETS)
def test_native_run_matches_jit_and_simulation(graph, images, reference, name, require_cross):
    target = resolve(name)
    require_runnable(target, require_cross)
    built = build(graph, target)
    outs = run_native(built, images)
    got = np.stack([o[built.outputs[0][0]] for o in outs])
    np.testing.assert_array_equal(got, reference)


def test_header_with_another_prefix_links_the_driver(graph, images, reference, tmp_path):
    """The driver builds against any symbol prefix; the header's macros follow it."""
    built = build(graph, "host", prefix="net7", use_cache=False)
    header = header_text(built)
    assert "#define NET7_NUM_INPUTS 1" in header and "void net7_run(" in header
    outs = run_native(built, images[:2])
    np.testing.assert_array_equal(np.stack([o[built.outputs[0][0]] for o in outs]), reference[:2])


def test_x86_target_this_cpu_cannot_run_is_refused(graph, images):
    """A clear error instead of an illegal-instruction crash."""
    target = Target("x86-future", "an x86 CPU with a feature nobody has", X86_TRIPLE, "x86-64", "",
                    {"vector_bits": 128, "int8_dot": "generic", "requires": ("no-such-feature",)})
    built = build(graph, target, use_cache=False)
    with pytest.raises(NcnncError, match="target x86-future cannot run here: this CPU lacks no-such-feature"):
        run_native(built, images, target=target)


def test_missing_cross_toolchain_says_what_to_install(graph, images, tmp_path):
    built = build(graph, "armv8")
    with pytest.raises(NcnncError, match="apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"):
        run_native(built, images, path=str(tmp_path))  # a PATH with no tools on it


def test_bad_inputs_are_refused(graph, images):
    built = build(graph, "host")
    with pytest.raises(NcnncError, match="input set 0: input 'data' has shape"):
        run_native(built, [{"data": np.zeros((8, 11, 8), np.float32)}])
    with pytest.raises(NcnncError, match="no model input named 'x'"):
        run_native(built, [{"data": images[0]["data"], "x": images[0]["data"]}])


class ToyTargets:
    """An outside plugin adding a target: a Cortex-A53-like aarch64 with NEON."""

    @hookimpl
    def ncnnc_targets(self):
        return [Target("toy-a53", "a plugin's aarch64 target", ARM_TRIPLE, "cortex-a53", "+neon",
                       {"vector_bits": 128, "int8_dot": "neon", "requires": ("neon",)})]


def test_outside_target_plugin_compiles_and_runs(graph, images, reference, tmp_path, capsys, require_cross):
    plugin = ToyTargets()
    registry().register(plugin, name="toy-targets")
    try:
        assert main(["plugins", "targets"]) == 0
        out = capsys.readouterr().out
        assert "toy-a53" in out and "[toy-targets]" in out
        assert "armv8.2-dotprod" in out and "x86-64-v3" in out and "host" in out
        built = build(graph, "toy-a53", use_cache=False)
        write_aot(built, tmp_path)
        assert _elf_machine((tmp_path / "model.o").read_bytes()) == 0xB7
        require_cross()
        outs = run_native(built, images)
        np.testing.assert_array_equal(np.stack([o[built.outputs[0][0]] for o in outs]), reference)
    finally:
        registry().unregister(plugin)
    with pytest.raises(NcnncError, match=r"unknown target 'toy-a53' \(known targets: host, x86-64-v3"):
        resolve("toy-a53")


def test_docs_quote_the_driver():
    """docs/llvm-aot.md shows the driver kept in the repository, verbatim."""
    assert DRIVER.read_text() in (ROOT / "docs" / "llvm-aot.md").read_text()


def test_driver_is_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"ncnnc.backends.llvm" = ["driver/*.c"]' in text
    assert DRIVER.exists() and sys.modules["ncnnc.backends.llvm"].__file__
