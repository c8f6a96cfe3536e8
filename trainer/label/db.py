"""The project folder and its SQLite database.

``PROJECT/studio.sqlite3`` holds everything: settings, photos, users, each rater's answer per
photo, boxes, adjudications. WAL journal with ``synchronous=FULL`` and one ``BEGIN IMMEDIATE``
transaction per save, so a process killed mid-save (kill -9) leaves the previous state whole.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trainer.label.models import LabelError

log = logging.getLogger(__name__)

DB_NAME = "studio.sqlite3"
CACHE_DIR = "cache"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
  id INTEGER PRIMARY KEY,
  relpath TEXT NOT NULL UNIQUE,
  sha256 TEXT NOT NULL UNIQUE,
  width INTEGER NOT NULL CHECK (width > 0),
  height INTEGER NOT NULL CHECK (height > 0),
  patient_id TEXT NOT NULL,
  region TEXT,
  overlap INTEGER NOT NULL DEFAULT 0,
  added TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('rater', 'adjudicator')),
  created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
  photo_id INTEGER NOT NULL REFERENCES photos(id),
  rater TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('done', 'unusable')),
  reason TEXT,
  saved TEXT NOT NULL,
  PRIMARY KEY (photo_id, rater));
CREATE TABLE IF NOT EXISTS boxes (
  id INTEGER PRIMARY KEY,
  photo_id INTEGER NOT NULL REFERENCES photos(id),
  rater TEXT NOT NULL,
  x INTEGER NOT NULL CHECK (x >= 0), y INTEGER NOT NULL CHECK (y >= 0),
  w INTEGER NOT NULL CHECK (w > 0), h INTEGER NOT NULL CHECK (h > 0),
  erythema INTEGER CHECK (erythema BETWEEN 0 AND 3),
  excoriation INTEGER CHECK (excoriation BETWEEN 0 AND 3),
  lichenification INTEGER CHECK (lichenification BETWEEN 0 AND 3),
  papulation INTEGER CHECK (papulation BETWEEN 0 AND 3),
  note TEXT,
  FOREIGN KEY (photo_id, rater) REFERENCES answers(photo_id, rater));
CREATE INDEX IF NOT EXISTS boxes_by_photo ON boxes(photo_id, rater);
CREATE TABLE IF NOT EXISTS adjudications (
  photo_id INTEGER NOT NULL REFERENCES photos(id),
  anchor_box INTEGER NOT NULL,
  sign TEXT NOT NULL,
  grade INTEGER NOT NULL CHECK (grade BETWEEN 0 AND 3),
  adjudicator TEXT NOT NULL,
  saved TEXT NOT NULL,
  PRIMARY KEY (anchor_box, sign));
"""

#: Settings and their defaults (text in the settings table).
DEFAULTS = {
    "schema_version": str(SCHEMA_VERSION),
    "overlap_share": "0.2",   # share of photos that go to several raters (1.0: all)
    "overlap_raters": "2",    # how many raters an overlap photo goes to
    "match_iou": "0.3",       # boxes of two raters with IoU >= this are the same lesion
}


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def cache(self) -> Path:
        return self.root / CACHE_DIR


def connect(project: Project) -> sqlite3.Connection:
    """A connection with WAL, full sync and foreign keys; autocommit (use ``transaction``)."""
    db = sqlite3.connect(project.db_path, timeout=15, isolation_level=None,
                         check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One all-or-nothing write: BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def create_project(root: Path, photos_dir: Path) -> Project:
    """Make (or reopen) the project folder, its schema and settings."""
    root = Path(root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise LabelError(f"project path {root} is a file; give a folder")
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root)
    db = connect(project)
    try:
        db.executescript(SCHEMA)
        with transaction(db):
            for key, value in DEFAULTS.items():
                db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (key, value))
            old = get_setting(db, "photos_dir")
            if old and Path(old) != photos_dir:
                raise LabelError(f"project {root} was made for photos in {old}, not {photos_dir};"
                                 " use a new project folder")
            db.execute("INSERT OR IGNORE INTO settings VALUES ('photos_dir', ?)",
                       (str(photos_dir),))
    finally:
        db.close()
    return project


def open_project(root: Path) -> Project:
    project = Project(Path(root).expanduser().resolve())
    if not project.db_path.is_file():
        raise LabelError(f"{project.root} is not a labelling project (no {DB_NAME}); "
                         "make one with `python -m trainer label init PROJECT --photos DIR`")
    return project


def get_setting(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_setting(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))


def photos_dir(db: sqlite3.Connection) -> Path:
    return Path(get_setting(db, "photos_dir") or ".")
