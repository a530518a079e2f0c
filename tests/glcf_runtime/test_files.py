"""The one atomic-write helper and the file hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from glcf_runtime.files import atomic_write, atomic_write_bytes, atomic_write_json, file_sha256


def test_atomic_json_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "model.plan.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 2}
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "model.plan", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.plan.json"]


def test_a_failing_writer_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")

    def half_write(tmp: Path) -> None:
        tmp.write_bytes(b"ne")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_write, fsync=True)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # spans several 1 MiB reads
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
