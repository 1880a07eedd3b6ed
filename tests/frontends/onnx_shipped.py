"""Run the model/data cases shipped inside the ``onnx`` package through ``ncnnc convert`` and the real
ncnn runtime, and classify each outcome.

A case is ``model.onnx`` plus ``test_data_set_0/{input,output}_*.pb``.  The outcomes:

- ``match``: converted, ran, and every output equals the expected one's first batch item within
  1e-3 of that output's largest magnitude (NaN where, and only where, the expected value is NaN);
- ``refused``: ``ncnnc convert`` exited with status 2 and one line on stderr (the reason);
- ``wrong``: converted and ran, but an output differs (or has another size);
- ``crash``: the ncnn runtime could not load or run the model, or took the process down;
- ``traceback``: ``ncnnc convert`` raised something that is not a user error.

The cases run in a worker process that reports one JSON line per case; a worker that dies (a
runtime crash) is recorded against its case and replaced.  ``python tests/frontends/onnx_shipped.py``
prints the breakdown and every case that is not a match.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SUITES = ("pytorch-converted", "pytorch-operator", "simple")
TOLERANCE = 1e-3


@dataclass
class Outcome:
    """What happened to one case: its status and a one-line detail (the refusal, the mismatch ...)."""

    case: str
    status: str
    detail: str = ""


def shipped_cases() -> list[Path]:
    """Every case folder of the shipped suites, sorted."""
    import onnx

    root = Path(onnx.__file__).parent / "backend" / "test" / "data"
    return sorted(p.parent for suite in SUITES for p in (root / suite).glob("*/model.onnx"))


def case_name(case: Path) -> str:
    """``suite/case`` for a case folder."""
    return f"{case.parent.name}/{case.name}"


def _read_tensors(folder: Path, prefix: str) -> list:
    import onnx
    from onnx import numpy_helper

    arrays = []
    for i in range(len(list(folder.glob(f"{prefix}_*.pb")))):
        tensor = onnx.TensorProto()
        tensor.ParseFromString((folder / f"{prefix}_{i}.pb").read_bytes())
        arrays.append(numpy_helper.to_array(tensor))
    return arrays


def _as_blob(x):
    """An input as the ncnn runtime takes it: float32, or integer indices as int32 data (ncnn's Embed
    reads its input blob as int32)."""
    import numpy as np

    if np.issubdtype(x.dtype, np.integer):
        return np.ascontiguousarray(x, dtype=np.int32).view(np.float32)
    return np.asarray(x, dtype=np.float32)


def run_case(case: Path) -> Outcome:
    """Convert one case with the CLI, run it in the real runtime, compare (runs in this process)."""
    import numpy as np
    import onnx

    from ncnnc.backends.ncnn_runtime import RuntimeNet
    from ncnnc.core.cli import main
    from ncnnc.core.errors import NcnncError

    name = case_name(case)
    with tempfile.TemporaryDirectory(prefix="ncnnc-shipped-") as tmp:
        param, binf = Path(tmp) / "m.param", Path(tmp) / "m.bin"
        err, out = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                status = main(["convert", str(case / "model.onnx"), str(param), str(binf)])
        except BaseException as e:  # anything escaping the CLI is a traceback the user would see
            last = traceback.format_exception_only(type(e), e)[-1].strip()
            return Outcome(name, "traceback", last)
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        if status != 0:
            if status == 2 and len(lines) == 1:
                return Outcome(name, "refused", lines[0])
            return Outcome(name, "traceback", f"exit {status}: {' | '.join(lines)}")
        model = onnx.load(str(case / "model.onnx"), load_external_data=False)
        init = {t.name for t in model.graph.initializer}
        input_names = [vi.name for vi in model.graph.input if vi.name not in init]
        output_names = [vi.name for vi in model.graph.output]
        data = case / "test_data_set_0"
        inputs, expected = _read_tensors(data, "input"), _read_tensors(data, "output")
        feeds = {n: _as_blob(x[0] if x.ndim else x) for n, x in zip(input_names, inputs)}
        try:
            got = RuntimeNet(param, binf).run(feeds, output_names)
        except NcnncError as e:
            return Outcome(name, "crash", str(e))
        for oname, want in zip(output_names, expected):
            want = np.asarray(want, dtype=np.float64)
            have = got[oname].astype(np.float64).reshape(-1)
            first = want[0] if want.ndim and want[0].size == have.size else want
            if first.size != have.size:
                return Outcome(name, "wrong", f"output {oname}: {have.size} values, expected {list(first.shape)}")
            want_flat = first.reshape(-1)
            if not np.array_equal(np.isnan(want_flat), np.isnan(have)):
                return Outcome(name, "wrong", f"output {oname}: NaN where the expected value is not, or not NaN")
            finite = ~np.isnan(want_flat)
            bound = TOLERANCE * max(float(np.abs(want_flat[finite]).max(initial=0.0)), 1e-6)
            diff = float(np.abs(want_flat[finite] - have[finite]).max(initial=0.0))
            if not diff <= bound:
                return Outcome(name, "wrong", f"output {oname}: max difference {diff:.3g} > {bound:.3g}")
        return Outcome(name, "match", "; ".join(lines))


def _worker() -> None:
    """Read case folders from stdin, answer one JSON outcome per line on stdout."""
    import warnings

    warnings.simplefilter("ignore")
    real_stdout = sys.stdout
    for line in sys.stdin:
        outcome = run_case(Path(line.strip()))
        real_stdout.write(json.dumps(outcome.__dict__) + "\n")
        real_stdout.flush()


def run_all(cases: list[Path] | None = None) -> list[Outcome]:
    """Every case's outcome, each worker crash recorded against the case it was running."""
    pending = list(cases if cases is not None else shipped_cases())
    outcomes: list[Outcome] = []
    while pending:
        proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(f"{c}\n" for c in pending))
        proc.stdin.close()
        for line in proc.stdout:
            outcomes.append(Outcome(**json.loads(line)))
            pending.pop(0)
        proc.wait()
        if pending:
            tail = (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-1:]  # type: ignore[union-attr]
            outcomes.append(Outcome(case_name(pending.pop(0)), "crash",
                                    f"process ended with status {proc.returncode} {' '.join(tail)}".strip()))
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    """The breakdown by status, then every case that is not a match."""
    counts = Counter(o.status for o in outcomes)
    lines = [f"{len(outcomes)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    lines += [f"  {o.status:9} {o.case}: {o.detail}" for o in outcomes if o.status != "match"]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker()
    else:
        print(summary(run_all()))
