"""A pack install checks free disk space before extracting anything: when the disk is
short it refuses with NotEnoughSpaceError (a typed InstallError) and changes nothing."""

from __future__ import annotations

import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from device.packs import install
from device.packs.install import InstallError, NotEnoughSpaceError, space_needed

Usage = namedtuple("Usage", "total used free")


def _tree(root: Path) -> dict[str, str]:
    """Every path under root, with a link's target or a file's size."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = (f"-> {os.readlink(path)}" if path.is_symlink()
                    else str(path.stat().st_size) if path.is_file() else "dir")
    return out


@pytest.fixture
def packs(tmp_path):
    """A packs folder with a current pack, and a 2 MiB pack file to install."""
    packs_dir = tmp_path / "packs"
    old = packs_dir / install.STORE / "1.0.0-abc"
    old.mkdir(parents=True)
    (old / "model.tflite").write_bytes(b"x" * 100)
    os.symlink(f"{install.STORE}/1.0.0-abc", packs_dir / install.CURRENT)
    (packs_dir / ".lock").touch()  # left by that pack's install
    pack = tmp_path / "pack-2.0.0.tar"
    pack.write_bytes(b"\0" * (2 * 1024 * 1024))
    return pack, packs_dir


def _free(monkeypatch, free: int) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(install.shutil, "disk_usage",
                        lambda path: Usage(real(path).total, 0, free))


def test_short_disk_refuses_before_extracting_and_changes_nothing(packs, monkeypatch):
    pack, packs_dir = packs
    before = _tree(packs_dir)
    needed = space_needed(pack.stat().st_size)
    assert needed > pack.stat().st_size  # a margin over the pack's own size
    _free(monkeypatch, needed - 1)
    with pytest.raises(NotEnoughSpaceError) as caught:
        install.install_pack(pack, packs_dir)
    assert isinstance(caught.value, InstallError)  # the CLI and web already handle it
    assert caught.value.free == needed - 1 and caught.value.needed == needed
    message = str(caught.value)
    assert "not enough free disk space" in message and "nothing changed" in message
    assert str(pack) in message and "MiB needed" in message
    assert _tree(packs_dir) == before  # no staging folder, current still the old pack


def test_enough_space_goes_on_to_verify_the_pack(packs, monkeypatch):
    pack, packs_dir = packs
    _free(monkeypatch, space_needed(pack.stat().st_size))
    with pytest.raises(InstallError) as caught:  # the zero-filled file is no pack
        install.install_pack(pack, packs_dir)
    assert not isinstance(caught.value, NotEnoughSpaceError)
    assert os.readlink(packs_dir / install.CURRENT) == f"{install.STORE}/1.0.0-abc"
