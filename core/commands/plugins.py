"""``ncnnc plugins``: every registered frontend, pass, calibrator, backend and target, with its source."""

from __future__ import annotations

import argparse

from ncnnc.core.registry import KINDS, registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc plugins``."""
    parser.add_argument("kind", nargs="?", choices=KINDS, help="list only this kind")


def run(args: argparse.Namespace) -> int:
    """Print the registry, one item per line, grouped by kind."""
    reg = registry()
    for kind in [args.kind] if args.kind else KINDS:
        items = reg.all(kind)
        if not items and kind == "layer_types":
            continue
        print(f"{kind}:")
        width = max((len(r.name) for r in items), default=0)
        for r in items:
            print(f"  {r.name:<{width}}  {r.description}  [{r.source}]")
            if kind == "calibrators" and (params := calibrator_params(r.item)):
                print(f"  {'':<{width}}  parameters: {params}")
    return 0


def calibrator_params(factory: object) -> str:
    """A calibration method's parameters with their defaults, ``key=default`` (help), or ``""``."""
    params = (*getattr(factory, "params", ()), *getattr(factory, "refine_params", ()))
    return ", ".join(f"{p.name}={p.default}" + (f" ({p.help})" if p.help else "") for p in params)
