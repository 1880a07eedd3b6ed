"""ncnn's own int8 toolchain, for the quality benches: ncnnoptimize, ncnn2table, ncnn2int8 as ncnn's
quantization guide runs them (``docs/how-to-use-and-FAQ/quantized-int8-inference.md``).

``tools`` is an ncnn build directory (``build/tools``, holding ``ncnnoptimize`` and ``quantize/ncnn2table``,
``quantize/ncnn2int8``) or a folder with the three programs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from ncnnc.core.errors import NcnncError

PROGRAMS = ("ncnnoptimize", "ncnn2table", "ncnn2int8")


def find_program(tools: Path, name: str) -> Path:
    """``name`` in ``tools`` or its ``quantize`` subfolder."""
    for path in (tools / name, tools / "quantize" / name):
        if path.is_file():
            return path
    raise NcnncError(f"{name} not found in {tools} (nor in {tools / 'quantize'})")


def _run(args: Sequence[object]) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise NcnncError(f"{Path(str(args[0])).name} failed (exit {done.returncode}): {' | '.join(tail)}")


def _vector(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:g}" for v in values) + "]"


def ncnn_int8(tools: Path, param: Path, binf: Path, images: Sequence[Path], out: Path, *, mean: Sequence[float],
              norm: Sequence[float], shape: Sequence[int], pixel: str, method: str = "kl",
              threads: int = 1) -> tuple[Path, Path]:
    """The int8 model ncnn's toolchain makes from ``param``/``binf`` with ``images``: ncnnoptimize (fp32
    storage), ncnn2table ``method=...`` with ncnn2table's preprocessing arguments, ncnn2int8; written in
    ``out``, returns its ``.param`` and ``.bin``."""
    out.mkdir(parents=True, exist_ok=True)
    optimize, table, int8 = (find_program(tools, name) for name in PROGRAMS)
    opt_param, opt_bin = out / "opt.param", out / "opt.bin"
    _run([optimize, param, binf, opt_param, opt_bin, 0])
    listing = out / "images.txt"
    listing.write_text("".join(f"{p}\n" for p in images))
    _run([table, opt_param, opt_bin, listing, out / "ncnn.table", f"mean={_vector(mean)}", f"norm={_vector(norm)}",
          f"shape={_vector(shape)}", f"pixel={pixel}", f"thread={threads}", f"method={method}"])
    q_param, q_bin = out / "int8.param", out / "int8.bin"
    _run([int8, opt_param, opt_bin, q_param, q_bin, out / "ncnn.table"])
    return q_param, q_bin
