"""Atomic writes: all or nothing, with the permissions any other file would get."""

from __future__ import annotations

import os

import pytest

from speechint_desktop.core.fsutil import atomic_dir, atomic_write_text


def test_atomic_write_replaces_whole_and_uses_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "r" / "out.json", "first")
        atomic_write_text(p, "second")
    finally:
        os.umask(old)
    assert p.read_text() == "second"
    assert p.stat().st_mode & 0o777 == 0o644
    assert [x.name for x in p.parent.iterdir()] == ["out.json"]  # no temp files left


def test_atomic_dir_leaves_nothing_on_failure_and_replaces_on_success(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as d:
            (d / "half.bin").write_text("x")
            raise RuntimeError("killed mid-way")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    for text in ("v1", "v2"):
        with atomic_dir(final) as d:
            (d / "weights").write_text(text)
    assert (final / "weights").read_text() == "v2"
    assert [x.name for x in tmp_path.iterdir()] == ["model"]
