"""The plugin contract protects its authors: docs/calibrators.md's example runs as written (it sets
``self.scale`` and ``self.absmax``), a broken contract or any exception inside an outside plugin ends
in one line naming the plugin and its package (``--debug`` adds the traceback).

Outside plugins are installed as an installed distribution would be: a module and a dist-info with
an ``ncnnc`` entry point, on ``PYTHONPATH`` of the ``ncnnc`` processes run here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncnnc.backends.ncnn_writer import save
from ncnnc.core.builder import GraphBuilder
from ncnnc.core.table import CalibrationTable

ROOT = Path(__file__).resolve().parent.parent

BROKEN = '''
import numpy as np
from ncnnc.core.calibration import Calibrator, CalibratorFactory
from ncnnc.core.hookspecs import hookimpl
from ncnnc.core.passes import Pass


class Crashes(Calibrator):
    def __init__(self):
        self.seen = {}

    def observe(self, batch):
        self.seen["n"] = self.seen.get("n", 0) + len(batch)

    def merge(self, other):
        self.seen["n"] += other.seen["n"]

    def threshold(self):
        return self.seen["peak"]  # a bug: KeyError


class Shadows(Calibrator):
    passes = 2

    def __init__(self):
        self.next_pass = 1  # replaces the method the driver calls between passes

    def observe(self, batch):
        pass

    def merge(self, other):
        pass

    def threshold(self):
        return 1.0


class Explodes(Pass):
    def run(self, graph):
        return [1 / 0]


@hookimpl
def ncnnc_calibrators():
    return [CalibratorFactory("crashes", "raises in threshold()", Crashes),
            CalibratorFactory("shadows", "sets self.next_pass", Shadows)]


@hookimpl
def ncnnc_passes():
    return [Explodes("explodes", "divides by zero")]
'''


def install(site: Path, module: str, source: str, dist: str, version: str = "0.1") -> None:
    """``module`` with ``source`` as if pip had installed distribution ``dist`` with an ncnnc entry point."""
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[ncnnc]\n{module} = {module}\n")


def ncnnc(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``ncnnc ARGS`` in a process that sees the plugins installed in ``site``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "ncnnc", *args], env=env, capture_output=True, text=True)


def docs_example() -> str:
    """The complete plugin module of docs/calibrators.md's 'Writing a calibrator'."""
    text = (ROOT / "docs" / "calibrators.md").read_text()
    section = text[text.index("## Writing a calibrator"):]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[list[str], Path]:
    """A Convolution + InnerProduct model and a list of four .npy inputs."""
    tmp = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("data", (2, 6, 6))
    c = b.layer("Convolution", [x], {0: 3, 1: 1, 5: 0, 6: 6}, {"weight": rng.standard_normal((3, 2, 1, 1))})
    b.layer("InnerProduct", [c], {0: 4, 1: 0, 2: 4 * 108}, {"weight": rng.standard_normal((4, 108))})
    save(b.build(), tmp / "tiny.param", tmp / "tiny.bin")
    paths = []
    for i in range(4):
        np.save(tmp / f"t{i}.npy", rng.standard_normal((2, 6, 6)).astype(np.float32) * (i + 1))
        paths.append(str(tmp / f"t{i}.npy"))
    (tmp / "npy.txt").write_text("\n".join(paths) + "\n")
    return [str(tmp / "tiny.param"), str(tmp / "tiny.bin")], tmp / "npy.txt"


def table(site: Path, tiny, out: Path, *options: str) -> subprocess.CompletedProcess:
    """``ncnnc table`` on the tiny model (two worker processes: errors cross a process boundary)."""
    model, lst = tiny
    return ncnnc(site, "table", *model, str(lst), str(out), "shape=[6,6,2]", "type=1", "thread=2", *options)


def one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_the_documented_calibrator_runs_as_written(tmp_path, tiny):
    site = tmp_path / "site"
    install(site, "fracmax_docs", docs_example(), "ncnnc-docs-example")
    listed = ncnnc(site, "plugins", "calibrators")
    assert "fracmax" in listed.stdout and "[ncnnc-docs-example 0.1]" in listed.stdout
    assert "scale=0.5 (the fraction of the absmax)" in listed.stdout
    done = table(site, tiny, tmp_path / "f.table", "method=fracmax", "scale=0.25")
    assert done.returncode == 0, done.stderr
    ref = table(site, tiny, tmp_path / "m.table", "method=minmax")
    assert ref.returncode == 0, ref.stderr
    frac, minmax = CalibrationTable.load(tmp_path / "f.table"), CalibrationTable.load(tmp_path / "m.table")
    assert len(frac.input_scales) == 2
    for name, scale in minmax.input_scales.items():
        assert frac.input_scales[name] == pytest.approx(4 * scale, rel=1e-5)


def test_a_plugin_exception_is_one_line_naming_plugin_and_package(tmp_path, tiny):
    site = tmp_path / "site"
    install(site, "broken_plugin", BROKEN, "ncnnc-broken", "2.0")
    line = one_line(table(site, tiny, tmp_path / "c.table", "method=crashes"))
    assert line == ("ncnnc table: error: plugin crashes (ncnnc-broken 2.0) threshold() failed: KeyError: 'peak' "
                    "(--debug shows the traceback)")
    assert not (tmp_path / "c.table").exists()
    debug = table(site, tiny, tmp_path / "c.table", "method=crashes", "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr and 'self.seen["peak"]' in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("ncnnc table: error: plugin crashes (ncnnc-broken 2.0)")
    # a pass: `ncnnc optimize` runs every registered pass
    model, _ = tiny
    line = one_line(ncnnc(site, "optimize", *model, str(tmp_path / "o.param"), str(tmp_path / "o.bin")))
    assert line.startswith("ncnnc optimize: error: plugin explodes (ncnnc-broken 2.0) failed: ZeroDivisionError")


def test_replacing_a_driver_method_is_refused_in_one_line(tmp_path, tiny):
    site = tmp_path / "site"
    install(site, "broken_plugin", BROKEN, "ncnnc-broken", "2.0")
    line = one_line(table(site, tiny, tmp_path / "s.table", "method=shadows"))
    assert line == ("ncnnc table: error: calibration method shadows: Shadows.next_pass is 1, but the driver calls "
                    "next_pass() (docs/calibrators.md: the contract)")


def test_a_plugin_that_fails_to_import_is_named(tmp_path):
    site = tmp_path / "site"
    install(site, "no_import", "import numpy\nimport not_a_module_at_all\n", "ncnnc-no-import", "0.3")
    line = one_line(ncnnc(site, "plugins"))
    assert line.startswith("ncnnc plugins: error: plugin no_import (ncnnc-no-import 0.3): loading no_import failed: "
                           "ModuleNotFoundError"), line
