"""Hostile exports (issue 27): ``export-dataset --force`` never writes over the data or
packs folder, whatever --out names (the folder, its parent, a folder inside, a symlink)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from device.__main__ import main as device_main
from device.store import DB_NAME, Store
from device.vocab import Region, Sign

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


def tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size (SQLite's -wal/-shm files left out)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


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


def test_an_ordinary_folder_is_still_exported_and_replaced(site, capsys):
    root, data, _, config = site
    out = root.parent / "export"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert device_main(["export-dataset", "--config", str(config), "--out", str(out),
                        "--force"]) == 0
    assert (out / "manifest.csv").is_file() and not (out / "old.txt").exists()
    assert (data / DB_NAME).is_file() and tree(data / "images")
