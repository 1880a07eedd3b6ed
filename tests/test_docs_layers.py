"""``docs/layers.md`` lists every layer type ncnnc has a schema for, with what is covered."""

from __future__ import annotations

from pathlib import Path

from ncnnc.backends.numpy import op_class
from ncnnc.core.params import _SCHEMAS, get_schema

DOC = Path(__file__).resolve().parent.parent / "docs" / "layers.md"


def test_every_type_has_a_row_that_says_what_is_covered() -> None:
    """One table row per built-in schema; a row says 'yes' for a numpy op only when there is one."""
    get_schema("Input")
    rows = {line.split("|")[1].strip(): line for line in DOC.read_text().splitlines() if line.startswith("| ")}
    missing = [t for t in _SCHEMAS if t not in rows and t != "YoloV5Focus"]
    assert not missing, f"docs/layers.md has no row for {missing}"
    wrong = [t for t, line in rows.items() if t in _SCHEMAS and t != "Input"
             and (line.split("|")[4].strip() == "yes") != (op_class(t) is not None)]
    assert not wrong, f"docs/layers.md's numpy column is wrong for {wrong}"
