"""Generated reference sections of ``docs/optimizer.md``: the built-in passes with their ``order`` and
level, and every built-in layer type's param ids, names and defaults (from ``core/layer_types.py``).

``python -m ncnnc.core.docs_reference docs/optimizer.md`` rewrites the sections between their
``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->`` markers; ``--check`` only says
whether they are current (a test runs it, so the docs cannot drift from the code).  Run it in a
fresh process: only the built-ins are listed, never plugins registered in the same process.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ncnnc.core.params import LayerSchema, ParamSpec, Ref, get_schema, schema_types


def _default(spec: ParamSpec, schema: LayerSchema) -> str:
    if isinstance(spec.default, Ref):
        ref = schema.by_id.get(spec.default.id)
        return f"= {ref.name if ref else spec.default.id}"
    if spec.array:
        return "[]"
    return repr(spec.default) if isinstance(spec.default, str) else str(spec.default)


def param_reference() -> str:
    """A markdown table: each built-in layer type with its params as ``id=name (default)``."""
    rows = ["| layer type | params: `id=name` (default; `= other` defaults to that param, `[]` an array) |",
            "| --- | --- |"]
    for name in sorted(schema_types(), key=str.lower):
        schema = get_schema(name)
        params = ", ".join(f"`{p.id}={p.name}` ({_default(p, schema)})" for p in schema.params) or "none"
        rows.append(f"| `{name}` | {params} |")
    return "\n".join(rows)


def pass_reference() -> str:
    """A markdown table of the built-in passes in the order they run: name, ``order``, level, what it does."""
    from ncnnc.core.passes import LEVEL_EXACT, LEVEL_FOLD
    from ncnnc.core.registry import Registry

    passes = [r.item for r in Registry(load_entry_points=False).all("passes")]
    rows = ["| order | pass | level | what it does |", "| --- | --- | --- | --- |"]
    for p in sorted(passes, key=lambda p: p.order):  # stable: ties keep registration order, as the manager runs them
        level = {LEVEL_EXACT: "1 (exact)", LEVEL_FOLD: "2 (folds constants)"}.get(p.level, str(p.level))
        rows.append(f"| {p.order} | `{p.name}` | {level} | {p.description} |")
    return "\n".join(rows)


SECTIONS = {"passes": pass_reference, "params": param_reference}
"""Generated section name -> the function writing its body."""


def update(text: str) -> str:
    """``text`` with every generated section rewritten from the code."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n)(?:.*?\n)?(<!-- end generated: {name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"no generated section {name!r} in the document")
        body = make()
        text = pattern.sub(lambda m, body=body: m[1] + body + "\n" + m[2], text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or ``--check``) the generated sections of a document; 1 if ``--check`` finds them stale."""
    parser = argparse.ArgumentParser(description="regenerate the reference sections of docs/optimizer.md")
    parser.add_argument("document", type=Path)
    parser.add_argument("--check", action="store_true", help="only check that the sections are current")
    args = parser.parse_args(argv)
    old = args.document.read_text()
    new = update(old)
    if args.check:
        if new != old:
            print(f"{args.document}: generated sections are stale; run python -m ncnnc.core.docs_reference "
                  f"{args.document}", file=sys.stderr)
            return 1
        return 0
    args.document.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
