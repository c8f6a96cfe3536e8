"""Shared by the store's migration tests: turn a database back into an older schema
version, as a device that has not been updated yet would hold it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from device.core.vocab import Region
from device.store import DB_NAME, Store
from device.store.schema import RegionScan


def drop_column(name: str, table: str = "region_scans") -> str:
    """The statement that removes ``name`` (a column a later version added) from ``table``."""
    return f"ALTER TABLE {table} DROP COLUMN {name}"


def make_older(data_dir: Path, version: int, *statements: str) -> None:
    """Run ``statements`` (in order) on the store's database in ``data_dir`` and mark it
    as schema ``version``; the store must be closed."""
    conn = sqlite3.connect(Path(data_dir) / DB_NAME)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.commit()
    finally:
        conn.close()


def one_scan_store(data_dir: Path, **store_options) -> RegionScan:
    """Leave in ``data_dir`` a closed store holding one trunk scan of patient P1 (no grades,
    no photo), the scan a migration must keep; ``store_options`` go to ``Store``."""
    store = Store(data_dir, **store_options)
    try:
        store.create_patient("P1", 1990)
        return store.save_region_scan(store.open_visit("P1").id, Region.TRUNK)
    finally:
        store.close()
