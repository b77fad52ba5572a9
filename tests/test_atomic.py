"""``atomic_dir``: a directory appears complete or not at all."""

from __future__ import annotations

import pytest

from kogpt2.atomic import atomic_dir


def test_a_crash_while_writing_leaves_the_previous_directory(tmp_path):
    out = tmp_path / "dir"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("crash")
    assert (out / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["dir"]
    assert oct(out.stat().st_mode & 0o777) != "0o700"  # readable like any directory, not a private temp dir


def test_merge_keeps_other_files_and_moves_the_last_suffix_last(tmp_path, monkeypatch):
    import os

    (tmp_path / "model.safetensors").write_text("weights")
    moved = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (moved.append(os.path.basename(b)), real(a, b)))
    with atomic_dir(tmp_path, merge=True, last=(".onnx",)) as tmp:
        (tmp / "model.onnx").write_text("graph")
        (tmp / "config.json").write_text("{}")
    assert moved == ["config.json", "model.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.onnx", "model.safetensors"]
