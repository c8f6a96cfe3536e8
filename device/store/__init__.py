"""The scan store: patients, visits and region scans in SQLite (WAL) in the data dir.

One class, ``Store``, built in layers, each in its own module:
``db`` (connection, transactions, schema), ``patients`` (patients and visits),
``lesions`` (lesions followed visit after visit),
``scans`` (region scans, images, grade changes), ``exports`` (EASI, history, a
visit as export data), ``retention`` (purging old images). ``model`` holds the
schema SQL and the frozen records the store hands out.

Users are the dashboard's own table (device.web), not this module's: the store
records who changed what as the user name it is given.
"""

from __future__ import annotations

from device.store.db import DB_NAME, IMAGES_DIR, utcnow
from device.store.retention import ORPHAN_GRACE, Retention
from device.store.scans import encode_image
from device.store.schema import (
    Capture,
    Lesion,
    Patient,
    RecordNotFoundError,
    RegionScan,
    StoreError,
    Visit,
    VisitStatus,
)

__all__ = [
    "DB_NAME", "IMAGES_DIR", "ORPHAN_GRACE", "Capture", "Lesion", "Patient", "RecordNotFoundError",
    "RegionScan", "Store", "StoreError", "Visit", "VisitStatus", "encode_image", "utcnow",
]


class Store(Retention):
    """SQLite scan store. ``Store(data_dir)`` creates the database on first use."""
