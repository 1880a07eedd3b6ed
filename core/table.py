"""The calibration table in ncnn2table's format, and its reading and writing.

A table has, per quantizable layer, a weight line ``LAYER_param_0 s0 s1 ...`` (one scale per
output channel, or per group for depthwise) and an activation line ``LAYER s`` (the scale of the
layer's input blob).  Lines starting with ``#`` are kept: a commented layer stays fp32 downstream.
Scales are written with ``%f`` as ncnn2table writes them, so tables diff cleanly against ncnn's (but a tiny
positive scale that ``%f`` would write as zero: :func:`format_scale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ncnnc.core.errors import NcnncError
from ncnnc.core.fileio import atomic_outputs, read_input

WEIGHT_SUFFIX = "_param_0"


def format_scale(value: float) -> str:
    """A scale as the table writes it: ``%f`` as ncnn2table does, unless six decimals would write a positive
    scale as ``0.000000`` (an activation range beyond ``127 / 5e-7``), which is written ``%e`` instead (ncnn2int8
    reads it with ``%f`` too) rather than turning into a scale of zero."""
    text = f"{float(value):f}"
    return f"{float(value):e}" if value > 0 and float(text) == 0 else text


def as_written(value: float) -> float:
    """``value`` as a table holds it once written and read back (:func:`format_scale`)."""
    return float(format_scale(value))


@dataclass
class CalibrationTable:
    """Weight scales and input (bottom blob) scales per layer name.

    ``weight_scales[layer]`` is an array (per output channel / group), ``input_scales[layer]`` a
    float.  ``commented`` holds layer names whose lines were commented out (kept fp32);
    ``comments`` the raw commented lines, written back at the end.
    """

    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)
    input_scales: dict[str, float] = field(default_factory=dict)
    commented: set[str] = field(default_factory=set)
    comments: list[str] = field(default_factory=list)

    def layers(self) -> list[str]:
        """Layer names with at least one scale, weight lines' order first."""
        names = list(self.weight_scales)
        names += [n for n in self.input_scales if n not in self.weight_scales]
        return names

    def to_text(self) -> str:
        """The table as ncnn2table writes it: weight lines, then activation lines, then comments."""
        lines = []
        for name, scales in self.weight_scales.items():
            lines.append(f"{name}{WEIGHT_SUFFIX} " + " ".join(format_scale(s) for s in np.ravel(scales)) + " ")
        for name, scale in self.input_scales.items():
            lines.append(f"{name} {format_scale(scale)} ")
        lines += self.comments
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        """Write the table atomically."""
        with atomic_outputs(path) as (tmp,):
            tmp.write_text(self.to_text())

    @classmethod
    def parse(cls, text: str, path: str = "<table>") -> CalibrationTable:
        """Read a table; NaN, infinite, zero or negative scales are errors naming the line."""
        table = cls()
        for lineno, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                table.comments.append(stripped)
                body = stripped.lstrip("#").split()
                if body:
                    name = body[0]
                    table.commented.add(name[:-len(WEIGHT_SUFFIX)] if name.endswith(WEIGHT_SUFFIX) else name)
                continue
            name, *values = stripped.split()
            where = f"line {lineno}"
            if not values:
                raise NcnncError(f"no scale for {name!r}", path, where)
            try:
                scales = np.array([float(v) for v in values], dtype=np.float32)
            except ValueError:
                raise NcnncError(f"scale of {name!r} is not a number", path, where) from None
            bad = [v for v in scales if not math.isfinite(v) or v <= 0]
            if bad:
                raise NcnncError(f"scale {bad[0]} of {name!r} is not a positive finite number", path, where)
            if name.endswith(WEIGHT_SUFFIX):
                table.weight_scales[name[:-len(WEIGHT_SUFFIX)]] = scales
            else:
                if len(scales) != 1:
                    raise NcnncError(f"activation line {name!r} must have one scale, has {len(scales)}",
                                     path, where)
                table.input_scales[name] = float(scales[0])
        return table

    @classmethod
    def load(cls, path: str | Path) -> CalibrationTable:
        """Read a table file."""
        try:
            text = read_input(path).decode()
        except UnicodeDecodeError:
            raise NcnncError("not a text calibration table", str(path)) from None
        return cls.parse(text, str(path))
