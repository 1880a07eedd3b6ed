"""docs/optimizer.md's generated sections (built-in passes with their order, layer param names) match the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ncnnc.core.docs_reference import update

DOC = Path(__file__).resolve().parent.parent / "docs" / "optimizer.md"


def test_optimizer_docs_are_current():
    # a fresh process: the built-ins only, never plugins registered by other tests
    done = subprocess.run([sys.executable, "-m", "ncnnc.core.docs_reference", "--check", str(DOC)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = DOC.read_text()
    assert "| `Convolution` | `0=num_output` (0), `1=kernel_w` (0), `11=kernel_h` (= kernel_w)," in text
    assert "| 260 | `fuse_convolution_activation` | 1 (exact) |" in text
    assert "| 9100 | `shape_hints` |" in text


def test_a_stale_section_is_rewritten():
    stale = DOC.read_text().replace("| `Convolution` | `0=num_output` (0)", "| `Convolution` | `0=outputs` (0)")
    fresh = update(stale)
    assert "`0=outputs`" not in fresh and "| `Convolution` | `0=num_output` (0), `1=kernel_w` (0)," in fresh
