"""The 140 model/data cases shipped inside the onnx package, through ``ncnnc convert`` and the real ncnn
runtime: each converts and matches its expected outputs or is refused for a reason docs/onnx.md lists;
none gives wrong numbers, crashes the runtime or prints a traceback (see onnx_shipped.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_shipped import run_all, shipped_cases, summary

DOCS = Path(__file__).resolve().parents[2] / "docs" / "onnx.md"
MIN_MATCHES = 107
"""Cases that convert and match today; a change that loses one fails here."""


def documented_reasons() -> list[str]:
    """The phrases of the refusal table in docs/onnx.md (first column, in backticks)."""
    text = DOCS.read_text()
    section = text.split("\n## Refusals", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", section, re.MULTILINE)]


@pytest.fixture(scope="module")
def outcomes():
    """Every shipped case's outcome (one worker process; ~20 s)."""
    cases = shipped_cases()
    assert len(cases) == 140, f"expected the 140 shipped cases, found {len(cases)}"
    return run_all(cases)


def test_no_wrong_numbers_crashes_or_tracebacks(outcomes):
    bad = [o for o in outcomes if o.status not in ("match", "refused")]
    assert not bad, summary(bad)


def test_every_refusal_has_a_documented_reason(outcomes):
    reasons = documented_reasons()
    assert len(reasons) >= 10
    undocumented = [o for o in outcomes if o.status == "refused" and not any(r in o.detail for r in reasons)]
    assert not undocumented, summary(undocumented)


def test_enough_cases_convert_and_match(outcomes):
    matches = sum(o.status == "match" for o in outcomes)
    assert matches >= MIN_MATCHES, summary(outcomes)
