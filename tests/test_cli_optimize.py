"""``ncnnc optimize``: ncnnoptimize's command line, pass selection, bad input, and an outside plugin's pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.ncnn_writer import save
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.cli import main
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.ir import Graph
from ncnnc.core.patterns import Match, Op, PatternPass, chain, fuse_into
from ncnnc.core.registry import registry
from ncnnc.frontends.ncnn import load


@pytest.fixture
def model(squeezenet_dir):
    return [str(squeezenet_dir / "squeezenet_v1.1.param"), str(squeezenet_dir / "squeezenet_v1.1.bin")]


def outputs(tmp_path) -> list[str]:
    return [str(tmp_path / "out.param"), str(tmp_path / "out.bin")]


def test_ncnnoptimize_command_line(model, squeezenet_dir, tmp_path, capsys):
    assert main(["optimize", *model, *outputs(tmp_path), "65536"]) == 0
    out = capsys.readouterr().out
    assert "fuse_convolution_activation x26, eliminate_dropout x1" in out
    assert "layers 75 -> 48, .bin 4942088 -> 2478984 bytes (fp16 weights)" in out
    assert (tmp_path / "out.bin").read_bytes() == (squeezenet_dir / "squeezenet_v1.1-opt.bin").read_bytes()


def test_verbose_lists_every_change(model, tmp_path, capsys):
    assert main(["optimize", *model, *outputs(tmp_path), "0", "-v"]) == 0
    out = capsys.readouterr().out
    assert "round 1 fuse_convolution_activation: 26 change(s)" in out
    assert "    conv1 + relu_conv1 -> conv1 (9=1)" in out
    assert "    removed Dropout drop9" in out
    assert "nothing to do for: fuse_batchnorm_scale" in out


@pytest.mark.parametrize(("options", "layers"), [
    (["--disable", "fuse_convolution_activation"], 74),
    (["--disable", "fuse_convolution_activation,eliminate_dropout"], 75),
    (["--only", "eliminate_dropout"], 74),
    (["--level", "0"], 75),
])
def test_pass_selection(model, tmp_path, options, layers, capsys):
    assert main(["optimize", *model, *outputs(tmp_path), *options]) == 0
    assert len(load(tmp_path / "out.param")) == layers
    assert f"layers 75 -> {layers}" in capsys.readouterr().out


def test_without_flag_weights_keep_their_storage(model, squeezenet_dir, tmp_path):
    assert main(["optimize", *model, *outputs(tmp_path)]) == 0
    assert (tmp_path / "out.bin").stat().st_size == (squeezenet_dir / "squeezenet_v1.1.bin").stat().st_size


@pytest.mark.parametrize(("args", "message"), [
    (["abc"], "storage flag 'abc' is not an integer"),
    (["0", "--disable", "fuse_everything"], "no pass named 'fuse_everything' (available: "),
    (["0", "--only", "eliminate_dropout,typo"], "no pass named 'typo'"),
])
def test_bad_options_are_one_line_errors(model, tmp_path, args, message, capsys):
    assert main(["optimize", *model, *outputs(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncnnc optimize: error: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_bad_model_names_file_and_line(squeezenet_dir, tmp_path, capsys):
    bad = tmp_path / "bad.param"
    lines = (squeezenet_dir / "squeezenet_v1.1.param").read_text().splitlines()
    lines[6] = lines[6].replace("0=16", "0=sixteen")
    bad.write_text("\n".join(lines) + "\n")
    assert main(["optimize", str(bad), str(squeezenet_dir / "squeezenet_v1.1.bin"), *outputs(tmp_path), "0"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 7:" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.param"]


def test_truncated_bin_is_an_error(model, tmp_path, capsys):
    short = tmp_path / "short.bin"
    short.write_bytes(Path(model[1]).read_bytes()[:1000])
    assert main(["optimize", model[0], str(short), *outputs(tmp_path), "0"]) == 2
    assert "truncated" in capsys.readouterr().err
    assert not (tmp_path / "out.param").exists()


# -- a pattern registered by an outside plugin --------------------------------------------------
def _linear_power(layer) -> bool:
    return layer.p("power") == 1.0


def _fold_power(graph: Graph, m: Match) -> str:
    """Fold ``Power(x) = shift + scale * x`` (power 1) into the Convolution before it."""
    conv, power = m["conv"], m["power"]
    scale, shift = np.float32(power.p("scale")), np.float32(power.p("shift"))
    conv.weights["weight"].data = conv.weight("weight") * scale
    conv.weights["bias"].data = conv.weight("bias") * scale + shift
    fuse_into(graph, conv, power)
    return f"{conv.name} + {power.name} -> {conv.name}"


class PowerFolding:
    """What an outside package would register (through its ``ncnnc`` entry point)."""

    @hookimpl
    def ncnnc_passes(self) -> list:
        return [PatternPass("fuse_convolution_power",
                            chain(conv=Op("Convolution", where=lambda c: c.p("activation_type") == 0
                                          and c.p("bias_term") == 1),
                                  power=Op("Power", where=_linear_power)),
                            _fold_power, level=2, order=200)]


def test_outside_plugin_pattern_is_applied(tmp_path, capsys):
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.layer("Convolution", [b.input("data", (3, 8, 8))], {0: 4, 1: 3, 5: 1, 6: 108},
                {"weight": rng.uniform(-1, 1, 108), "bias": rng.uniform(-1, 1, 4)}, name="conv")
    x = b.layer("Power", [x], {0: 1.0, 1: 0.5, 2: 0.25}, name="power")
    b.layer("ReLU", [x], name="relu")
    save(b.build(), tmp_path / "in.param", tmp_path / "in.bin")
    args = ["optimize", str(tmp_path / "in.param"), str(tmp_path / "in.bin"), *outputs(tmp_path), "0"]

    assert main(args) == 0
    assert "fuse_convolution_power" not in capsys.readouterr().out
    plugin = PowerFolding()
    registry().register(plugin, name="power-folding")
    try:
        assert main([*args, "-v"]) == 0
    finally:
        registry().unregister(plugin)
    out = capsys.readouterr().out
    assert "conv + power -> conv" in out and "conv + relu -> conv (9=1)" in out
    optimized = load(tmp_path / "out.param")
    assert [layer.type for layer in optimized.layers] == ["Input", "Convolution"]
    data = {"data": rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32)}
    ref = RuntimeNet(tmp_path / "in.param", tmp_path / "in.bin").run(data, ["relu"])["relu"]
    got = RuntimeNet(tmp_path / "out.param", tmp_path / "out.bin").run(data, ["relu"])["relu"]
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
