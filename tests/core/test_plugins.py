"""Outside plugins register through the same hooks as the built-ins, listed and used."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from ncnnc.core.builder import GraphBuilder
from ncnnc.core.cli import main
from ncnnc.core.errors import NcnncError
from ncnnc.core.frontend import Frontend, load_model
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.registry import Registry, registry


class ToyPlugin:
    """A frontend for '.toy' files: the file holds one integer, the channel count of a ReLU net."""

    @hookimpl
    def ncnnc_frontends(self):
        def load(paths, **_):
            b = GraphBuilder()
            x = b.input("data", (int(Path(paths[0]).read_text()), 2, 2))
            b.layer("ReLU", [x], name="relu")
            return b.build()

        return [Frontend("toy", "toy test frontend", lambda p: p[0].endswith(".toy"), load, usage="X.toy")]


def test_registered_plugin_is_listed_and_used(tmp_path, capsys):
    plugin = ToyPlugin()
    registry().register(plugin, name="toy-plugin")
    try:
        assert main(["plugins", "frontends"]) == 0
        out = capsys.readouterr().out
        assert "toy" in out and "toy test frontend" in out and "[toy-plugin]" in out
        assert "ncnn" in out and "[ncnnc (built-in)]" in out
        model = tmp_path / "m.toy"
        model.write_text("5")
        graph = load_model([str(model)])
        assert graph.layers[0].params["c"] == 5
        assert main(["convert", str(model), str(tmp_path / "o.param"), str(tmp_path / "o.bin")]) == 0
        assert "ReLU" in (tmp_path / "o.param").read_text()
    finally:
        registry().unregister(plugin)
    assert "toy" not in registry().names("frontends")


def test_entry_point_plugin(tmp_path, monkeypatch):
    """A real entry point in the group 'ncnnc' (a distribution's metadata on sys.path) is loaded."""
    (tmp_path / "toy_ncnnc_plugin.py").write_text(textwrap.dedent('''
        from ncnnc.core.backend import Target
        from ncnnc.core.hookspecs import hookimpl

        @hookimpl
        def ncnnc_targets():
            return [Target("toy-cpu", "a test target", "riscv64-unknown-linux-gnu")]
    '''))
    dist = tmp_path / "toy_ncnnc_plugin-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ncnnc-plugin\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[ncnnc]\ntoy = toy_ncnnc_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    (found,) = [r for r in reg.all("targets") if r.name == "toy-cpu"]
    assert found.source == "toy-ncnnc-plugin 0.3"
    assert found.item.triple == "riscv64-unknown-linux-gnu"
    sys.modules.pop("toy_ncnnc_plugin", None)


def test_unknown_name_lists_choices():
    with pytest.raises(NcnncError, match=r"no frontend named 'nope' \(available: ncnn"):
        registry().get("frontends", "nope")


def test_builtin_plugin_kinds_match_their_hooks():
    """Built-ins are imported per kind on first use: each module's declared kinds are exactly its hooks."""
    import importlib

    from ncnnc.core.registry import BUILTIN_PLUGINS, KINDS

    for modname, kinds in BUILTIN_PLUGINS.items():
        module = importlib.import_module(modname)
        hooks = {k for k in KINDS if hasattr(getattr(module, f"ncnnc_{k}", None), "ncnnc_impl")}
        assert hooks == set(kinds), modname


def test_command_imports_only_the_plugins_it_uses():
    """``ncnnc table``'s start-up imports neither protobuf, onnx, llvmlite nor the other commands."""
    import subprocess

    code = ("import sys\nfrom ncnnc.core.cli import build_parser, command_word\n"
            "from ncnnc.core.registry import registry\n"
            "build_parser(command_word(['table'])); registry().all('frontends'); registry().all('calibrators')\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('google', 'onnx', 'llvmlite', 'tqdm')"
            " or m.startswith(('ncnnc.core.commands.', 'ncnnc.plugins.passes', 'ncnnc.backends.llvm')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ncnnc.core.commands.table"]
