"""The fuzz contract on a CI-sized campaign, and a kill of a real ``ncnnc compile`` by each signal.

``bench/fuzz.py --cases 10000`` and ``bench/kill.py --runs 20`` are the long versions of the same code.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from fuzz_inputs import GENERATORS, load_base, make_case  # noqa: E402
from fuzz_runner import FAILURES, describe, keep_pristine, run_cases, warm_up  # noqa: E402
from kill import kill_campaign  # noqa: E402

CI_CASES = 180
"""15 cases of each of the 12 input classes."""


def test_fuzz_contract_on_every_input_class(tmp_path, monkeypatch, squeezenet_dir, images_dir):
    """(The fixtures skip the test outside CI when ../shared, which the campaign mutates, is absent.)"""
    monkeypatch.setenv("NCNNC_MAX_MEMORY", "4G")
    base = load_base(tmp_path)
    keep_pristine(base, tmp_path / "pristine")
    warm_up()
    summary = run_cases((make_case(20261130, i, base) for i in range(CI_CASES)), tmp_path, jobs=2, timeout=120)
    print(summary.table())
    assert not summary.failures, "\n".join(describe(r) for r in summary.failures)
    assert set(summary.counts) == set(GENERATORS)
    for cls, counts in summary.counts.items():
        assert sum(counts.values()) == CI_CASES // len(GENERATORS)
        assert not any(counts[v] for v in FAILURES), cls
    total = {v: sum(c[v] for c in summary.counts.values()) for v in ("ok-success", "ok-error")}
    assert total["ok-success"] >= 20 and total["ok-error"] >= 100, total  # both halves of the contract exercised


def test_kill_a_compile_with_sigint_and_sigkill(tmp_path, squeezenet_dir, images_dir):
    results = kill_campaign(runs=1, seed=12, workdir=tmp_path)
    assert [r.signal for r in results] == ["SIGINT", "SIGKILL"]
    for r in results:
        assert r.ok, r
        assert r.signal != signal.SIGINT.name or r.status in (0, 130), r
