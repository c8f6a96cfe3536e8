"""Shared by the store's migration tests: turn a database back into an older schema
version, as a device that has not been updated yet would hold it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from device.store import DB_NAME


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
