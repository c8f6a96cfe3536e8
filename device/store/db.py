"""The store's database: one SQLite file (WAL) in the data dir, a connection per
thread, transactions, and the schema created or migrated on open.

Every save is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so a process
killed mid-save leaves the previous state whole. One SQLite connection per thread
(the dashboard runs under waitress threads); WAL lets readers run while one writer
writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from device.core.errors import storage_guard
from device.store.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    StoreError,
    migrate_to_v3,
    migrate_to_v4,
    migrate_to_v5,
    migrate_to_v6,
    migrate_to_v7,
    migrate_to_v8,
    migrate_v1_to_v2,
)

log = logging.getLogger(__name__)

DB_NAME = "atopiscan.sqlite3"
IMAGES_DIR = "images"

#: Test hook: called between the writes of one save (tests/test_store.py kills the
#: process while it runs, to prove the save is all-or-nothing). None in production.
_mid_save_hook: Callable[[str], None] | None = None
#: A kept frame and the crop box (x, y, w, h) in, the frame to write out.
FrameRedactor = Callable[["np.ndarray", "tuple[int, int, int, int] | None"], "np.ndarray"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("use timezone-aware datetimes (e.g. datetime.now(timezone.utc))")
    return when.astimezone(dt.timezone.utc).isoformat(timespec="seconds")



class _Now:
    """Marker: the transaction's time goes here."""


NOW = _Now()


class Database:
    """The connection and transaction half of ``Store``; the record mixins build on it."""

    def __init__(self, data_dir: Path | str, *, keep_images: bool = True, retention_days: int = 365,
                 keep_frames: bool = True, redact_frame: FrameRedactor | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.data_dir = Path(data_dir).expanduser()
        with storage_guard("creating the data folder", self.data_dir.parent):
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / DB_NAME
        self.images_dir = self.data_dir / IMAGES_DIR
        self.keep_images = keep_images
        self.keep_frames = keep_frames
        # What a kept frame goes through before it is written, outside the crop box (the
        # dashboard passes device.vision.faces.blur_faces when storage.blur_faces is on): the
        # store itself looks at no image.
        self.redact_frame = redact_frame
        self.retention_days = retention_days
        self.clock = clock
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._tx() as conn:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise StoreError(f"{self.db_path}: made by newer atopiscan software (schema {found}, "
                                 f"this one reads {SCHEMA_VERSION}); update the device software")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if found == 1:
                migrate_v1_to_v2(conn)
            if 0 < found < 3:
                migrate_to_v3(conn)
            if 0 < found < 4:
                migrate_to_v4(conn)
            if found < 5:
                migrate_to_v5(conn)
            if found < 6:
                migrate_to_v6(conn)
            if found < 7:
                migrate_to_v7(conn)
            if found < 8:
                migrate_to_v8(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


    # -- connections and transactions ------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=10,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a Pi loses power: each commit must be on disk
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # A full or read-only disk becomes StorageFull / StorageReadOnly (device.core.errors),
        # which the dashboard answers with 507 / 503 and the CLIs with one line.
        with storage_guard("saving to the scan database", self.data_dir):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back itself (disk full)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same committed state, while
        the service goes on writing (WAL). For exports and the monitor."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")

    def _hook(self, what: str) -> None:
        if _mid_save_hook is not None:
            _mid_save_hook(what)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _now(self) -> str:
        return iso(self.clock())

