"""The scan store's schema and the records it hands out (device.store uses them)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from device.vocab import MODEL_SIGNS, Region, Sign

#: PRAGMA user_version of the database this code writes; a newer one is refused.
SCHEMA_VERSION = 1


class StoreError(ValueError):
    """A store request that cannot be done (unknown id, closed visit, bad value); the
    message says which and what to do."""


class VisitStatus(str, Enum):
    OPEN = "open"
    CLOSED = "closed"


def model_col(sign: Sign) -> str:
    return f"model_{sign.value}"


def prob_col(sign: Sign) -> str:
    return f"prob_{sign.value}"


def final_col(sign: Sign) -> str:
    return f"final_{sign.value}"


def _sign_columns() -> str:
    cols = []
    for sign in MODEL_SIGNS:
        f = final_col(sign)
        cols += [f"{model_col(sign)} INTEGER", f"{prob_col(sign)} TEXT", f"{f} REAL",
                 f"{f}_by TEXT", f"{f}_at TEXT"]
    return ",\n    ".join(cols)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS patients (
    id TEXT PRIMARY KEY,
    birth_year INTEGER,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS visits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    date TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS visits_one_open_a_day ON visits(patient_id, date)
    WHERE status = 'open';
CREATE TABLE IF NOT EXISTS region_scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    visit_id INTEGER NOT NULL REFERENCES visits(id),
    region TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    pack_version TEXT,
    review INTEGER NOT NULL DEFAULT 0,
    {_sign_columns()},
    papulation REAL,
    area_percent REAL,
    clinician_by TEXT,
    clinician_at TEXT,
    image_path TEXT,
    image_saved_at TEXT
);
CREATE INDEX IF NOT EXISTS region_scans_visit ON region_scans(visit_id, region);
CREATE TABLE IF NOT EXISTS grade_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_id INTEGER NOT NULL REFERENCES region_scans(id),
    field TEXT NOT NULL,
    old REAL,
    new REAL,
    user TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Patient:
    id: str
    birth_year: int | None
    created: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Visit:
    id: int
    patient_id: str
    date: str  # ISO date
    status: VisitStatus
    created: str
    updated: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


@dataclass(frozen=True)
class Override:
    user: str
    at: str


@dataclass(frozen=True)
class RegionScan:
    id: int
    visit_id: int
    region: Region
    taken_at: str
    pack_version: str | None
    review: bool
    model_grades: dict[Sign, int | None]
    probs: dict[Sign, list[float] | None]
    final_grades: dict[Sign, float | None]  # the model's grade unless overridden
    overrides: dict[Sign, Override] = field(default_factory=dict)
    papulation: float | None = None
    area_percent: float | None = None
    clinician_by: str | None = None
    clinician_at: str | None = None
    image_path: str | None = None  # relative to the data dir

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "visit_id": self.visit_id, "region": self.region.value,
            "taken_at": self.taken_at, "pack_version": self.pack_version, "review": self.review,
            "model_grades": {s.value: g for s, g in self.model_grades.items()},
            "probs": {s.value: p for s, p in self.probs.items()},
            "final_grades": {s.value: g for s, g in self.final_grades.items()},
            "overrides": {s.value: asdict(o) for s, o in self.overrides.items()},
            "papulation": self.papulation, "area_percent": self.area_percent,
            "clinician_by": self.clinician_by, "clinician_at": self.clinician_at,
            "image_path": self.image_path,
        }


def scan_from_row(row: sqlite3.Row) -> RegionScan:
    overrides = {}
    for sign in MODEL_SIGNS:
        by = row[f"{final_col(sign)}_by"]
        if by:
            overrides[sign] = Override(by, row[f"{final_col(sign)}_at"])
    return RegionScan(
        id=row["id"], visit_id=row["visit_id"], region=Region(row["region"]),
        taken_at=row["taken_at"], pack_version=row["pack_version"], review=bool(row["review"]),
        model_grades={s: row[model_col(s)] for s in MODEL_SIGNS},
        probs={s: json.loads(row[prob_col(s)]) if row[prob_col(s)] else None for s in MODEL_SIGNS},
        final_grades={s: row[final_col(s)] for s in MODEL_SIGNS},
        overrides=overrides, papulation=row["papulation"], area_percent=row["area_percent"],
        clinician_by=row["clinician_by"], clinician_at=row["clinician_at"],
        image_path=row["image_path"],
    )
