"""Hostile exports (issue 27): ``export-dataset --force`` never writes over the data or
packs folder, whatever --out names (the folder, its parent, a folder inside, a symlink)."""

from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path

import numpy as np
import pytest

from device.__main__ import main as device_main
from device.core.vocab import Region, Sign
from device.store import DB_NAME, Store

WHEN = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.timezone.utc)


def reviewed_store(data: Path) -> None:
    store = Store(data, clock=lambda: WHEN)
    store.create_patient("A1", None)
    visit = store.open_visit("A1")
    crop = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    scan = store.save_region_scan(visit.id, Region.TRUNK, image=crop, pack_version="2.0")
    store.override_grade(scan.id, Sign.ERYTHEMA, 2, "ann", "staff")
    store.confirm_review(scan.id, "ann", "staff")
    store.close()


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256 (the store is not even opened)."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "atopiscan"
    data, packs = root / "data", root / "packs"
    reviewed_store(data)
    (packs / "store").mkdir(parents=True)
    (packs / "store" / "pack.bin").write_bytes(b"model")
    (tmp_path / "to-data").symlink_to(data)
    config = tmp_path / "device.yaml"
    config.write_text(f"version: 1\npacks:\n  dir: {packs}\nstorage:\n  data_dir: {data}\n")
    return root, data, packs, config


@pytest.mark.parametrize("target", ["data", "root", "data/images", "data/new", "link",
                                    "link/sub", "packs", "packs/store", "data/.exports"])
def test_force_never_writes_over_the_data_or_packs(site, target, capsys):
    root, data, packs, config = site
    out = {"data": data, "root": root, "data/images": data / "images", "data/new": data / "new",
           "link": root.parent / "to-data", "link/sub": root.parent / "to-data" / "sub",
           "packs": packs, "packs/store": packs / "store",
           "data/.exports": data / ".exports"}[target]
    before = tree(root)
    code = device_main(["export-dataset", "--config", str(config), "--out", str(out), "--force"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "never writes over" in err, err
    assert tree(root) == before and not (data / "new").exists()


@pytest.mark.parametrize("where", ["copy", "parent of copy"])
def test_force_never_writes_over_a_copy_of_a_scan_store(site, capsys, where):
    import shutil

    root, data, _, config = site
    backup = root.parent / "backups" / "data-2026-05"
    shutil.copytree(data, backup)
    out = backup if where == "copy" else backup.parent
    before = tree(backup)
    assert device_main(["export-dataset", "--config", str(config), "--out", str(out),
                        "--force"]) == 2
    assert "holds a scan store" in capsys.readouterr().err and tree(backup) == before


def test_an_ordinary_folder_is_still_exported_and_replaced(site, capsys):
    root, data, _, config = site
    out = root.parent / "export"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert device_main(["export-dataset", "--config", str(config), "--out", str(out),
                        "--force"]) == 0
    assert (out / "manifest.csv").is_file() and not (out / "old.txt").exists()
    assert (data / DB_NAME).is_file() and tree(data / "images")


KILLED = """
import os, signal, sys
from pathlib import Path
from device.export.work import ExportWork, partial_path
data, out = Path(sys.argv[1]), Path(sys.argv[2])
tmp = partial_path(out)
work = data / ".exports" / "dl-0123abcd"
with ExportWork(data).hold(tmp, work):
    for folder in (tmp, work):
        folder.mkdir(parents=True)
        (folder / "crop.png").write_bytes(b"x" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_export(data: Path, out: Path) -> None:
    """An export process killed -9 with its work folders half written."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", KILLED, str(data), str(out)], check=False)
    assert proc.returncode == -9


def test_a_killed_exports_work_is_removed_by_the_next_export(site, capsys):
    from device.export.work import ExportWork
    from device.store.audit import AuditAction, AuditLog

    root, data, _, config = site
    out = root.parent / "export"
    killed_export(data, out)
    stale = root.parent / ".export.partial-00c0ffee"  # an older version's leftover
    stale.mkdir()
    (data / ".exports" / ".dl.partial-1234abcd").write_bytes(b"y" * 500)
    other = root.parent / ".export.partial-not-ours"  # not a name exports make: kept
    other.mkdir()
    live = root.parent / ".export.partial-feedf00d"  # a running export's: kept
    live.mkdir()
    before = sorted(p.name for p in root.parent.glob(".export.partial-*"))
    assert len(before) == 4 and len(list((data / ".exports").iterdir())) == 3
    with ExportWork(data).hold(live):
        assert device_main(["export-dataset", "--config", str(config), "--out", str(out)]) == 0
    assert sorted(p.name for p in root.parent.glob(".export*")) == [
        ".export.partial-feedf00d", ".export.partial-not-ours"]
    assert [p.name for p in (data / ".exports").iterdir()] == [".inflight"]
    assert not list((data / ".exports" / ".inflight").iterdir())
    (entry,) = AuditLog(data).entries(AuditAction.EXPORT_CLEANUP)
    assert entry.details["removed"] == 4 and entry.details["bytes"] == 2500
    assert entry.user == "cli:" + __import__("getpass").getuser()


def test_a_killed_exports_work_is_removed_at_service_start(tmp_path):
    import yaml
    from web_support import write_frames

    from device.cli import run as run_cli
    from device.config import load_config
    from device.store.audit import AuditAction, AuditLog

    write_frames(tmp_path / "frames", n=1)
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1, "camera": {"source": "folder", "folder": "frames"},
        "packs": {"dir": "packs"}, "storage": {"data_dir": "data"}}))
    data = tmp_path / "data"
    killed_export(data, tmp_path / "out")
    assert len(list((data / ".exports").iterdir())) == 2
    prepared = run_cli.prepare(load_config(path))
    try:
        assert [p.name for p in (data / ".exports").iterdir()] == [".inflight"]
        (entry,) = AuditLog(data).entries(AuditAction.EXPORT_CLEANUP)
        assert entry.user == "service" and entry.details["removed"] == 2
        assert not list(tmp_path.glob(".out.partial-*"))
    finally:
        prepared.app.extensions["atopiscan"].purger.stop()
        prepared.service.close()


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
    (errno.EACCES, "permission denied"), (errno.EIO, "disk failed")])
def test_a_failing_disk_is_one_line_and_exit_2(site, monkeypatch, capsys, code, words):
    from device.export import dataset as ex

    root, _, _, config = site

    def failing_write(path, data):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(ex, "_write", failing_write)
    out = root.parent / "export"
    assert device_main(["export-dataset", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, err
    assert not out.exists() and not list(root.parent.glob(".export.*"))


@pytest.mark.parametrize("name", ["long-name", "long-parent", "proc", "proc-file", "sys"])
def test_impossible_targets_are_one_line_and_exit_2(site, capsys, name):
    root, _, _, config = site
    out = {"long-name": root.parent / ("n" * 300), "long-parent": root.parent / ("p" * 300) / "x",
           "proc": Path("/proc/self"), "proc-file": Path("/proc/self/x"),
           "sys": Path("/sys/kernel/x")}[name]
    code = device_main(["export-dataset", "--config", str(config), "--out", str(out), "--force"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert ("too long" in err) if name.startswith("long") else ("not a disk" in err)
