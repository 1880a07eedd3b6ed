"""Atomic outputs: all or nothing, usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from ncnnc.core.fileio import atomic_outputs


def test_outputs_appear_together_with_umask_permissions(tmp_path):
    a, b = tmp_path / "a.param", tmp_path / "a.bin"
    with atomic_outputs(a, b) as (ta, tb):
        ta.write_text("p")
        tb.write_bytes(b"b")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "p" and b.read_bytes() == b"b"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(a.stat().st_mode) == 0o666 & ~mask


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_outputs(tmp_path / "a", tmp_path / "b") as (ta, _):
        ta.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
