"""One atomic file writer: temp in the same folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import json
import os

import pytest

from device.core import atomic
from device.core.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_replace_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "card.json"
    atomic_write_text(target, "old\n")
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert target.read_text().endswith("\n")
    atomic_write_bytes(tmp_path / "sub" / "x.bin", b"\x00\x01")
    assert sorted(p.name for p in target.parent.iterdir()) == ["card.json", "x.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".keras"
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_private_files_are_never_readable_by_others(tmp_path):
    key = atomic_write_bytes(tmp_path / "signing.key", b"secret", mode=0o600)
    assert os.stat(key).st_mode & 0o077 == 0


def test_every_step_is_synced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") or os.fstat(fd).st_size)
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    atomic_write_bytes(tmp_path / "a.bin", b"12345")
    assert synced == [5, True]  # the file (5 bytes), then its folder
