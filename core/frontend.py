"""What a frontend plugin provides: a named reader from input files to a :class:`Graph`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph


@dataclass(frozen=True)
class Frontend:
    """A model reader.

    ``claims(paths)`` says whether this frontend reads these input files (by their names or
    first bytes); ``load(paths, **options)`` reads them.  ``options`` carries user settings such as
    an input ``shape`` for models whose input size is not fixed.
    """

    name: str
    description: str
    claims: Callable[[Sequence[str]], bool]
    load: Callable[..., Graph]
    usage: str = ""


def load_model(paths: Sequence[str | Path] | str | Path, **options) -> Graph:
    """Read a model with whichever registered frontend claims the paths (one path alone: an ONNX file).

    The graph is checked against ncnn's loading rules (:mod:`ncnnc.core.validate`) whichever frontend read it.
    """
    from ncnnc.core.registry import registry
    from ncnnc.core.validate import check_weights_fit, validate_graph

    paths = [str(paths)] if isinstance(paths, (str, Path)) else [str(p) for p in paths]
    for reg in registry().all("frontends"):
        if reg.item.claims(list(paths)):
            graph = reg.item.load(list(paths), **options)
            validate_graph(graph, str(paths[0]))
            check_weights_fit(graph, str(paths[0]))
            return graph
    usages = "; ".join(r.item.usage for r in registry().all("frontends") if r.item.usage)
    raise NcnncError(f"no frontend reads {' '.join(map(str, paths))!r} (expected {usages})")
