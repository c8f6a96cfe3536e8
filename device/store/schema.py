"""The scan store's schema and the records it hands out (device.store uses them)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from device.colour.record import ColourCorrection
from device.core.easi import EasiResult
from device.core.errors import InvalidInput, NotFound
from device.core.scanrecord import Scan
from device.core.vocab import MODEL_SIGNS, Region, Sign

#: PRAGMA user_version of the database this code writes; a newer one is refused.
#: 2: the full frame, crop box, crop mode and quality measures of each scan; who
#: confirmed its grades (reviewed_*) and the role behind each override.
#: 3: who moved the crop square on the captured frame (crop_by, crop_at).
#: 4: whether the models abstained on the scan (device.grading.abstain), and the score.
#: 5: lesions followed visit after visit (a lesions table, region_scans.lesion_id).
#: 6: the colour step of each scan (device.colour.correct): card, residual, correction.
#: 7: why each sign was flagged for review (review_reasons), so the result page keeps
#: them after a restart.
#: 8: the scan's whole result as the pipeline gave it (``result``, device.core.scanrecord.Scan):
#: the crop fallback, quality reasons, abstention and timings the result page and the JSON API
#: show, kept after a restart.
SCHEMA_VERSION = 8


class StoreError(InvalidInput):
    """A store request that cannot be done (unknown id, closed visit, bad value); the
    message says which and what to do."""


class RecordNotFoundError(StoreError, NotFound):
    """No patient, visit or scan with that id (a 404 on the web)."""


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
                 f"{f}_by TEXT", f"{f}_at TEXT", f"{f}_role TEXT"]
    return ",\n    ".join(cols)


#: Columns schema 2 added to region_scans (name, SQL type), in order.
V2_COLUMNS: tuple[tuple[str, str], ...] = (
    ("frame_path", "TEXT"), ("crop_box", "TEXT"), ("crop_mode", "TEXT"), ("quality", "TEXT"),
    ("reviewed_by", "TEXT"), ("reviewed_role", "TEXT"), ("reviewed_at", "TEXT"),
    *((f"{final_col(s)}_role", "TEXT") for s in MODEL_SIGNS),
)


def migrate_v1_to_v2(conn: sqlite3.Connection) -> None:
    """Add schema 2's columns. A version-1 scan that staff overrode or completed counts
    as reviewed, by the last person who changed it."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(region_scans)")}
    for name, kind in V2_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE region_scans ADD COLUMN {name} {kind}")
    by = ", ".join(["clinician_by", *(f"{final_col(s)}_by" for s in MODEL_SIGNS)])
    at = ", ".join(["clinician_at", *(f"{final_col(s)}_at" for s in MODEL_SIGNS)])
    conn.execute(f"UPDATE region_scans SET reviewed_by = COALESCE({by}), "
                 f"reviewed_at = COALESCE({at}) WHERE reviewed_by IS NULL")


#: Columns schema 3 added: who moved the crop square on the captured frame, and when.
V3_COLUMNS: tuple[tuple[str, str], ...] = (("crop_by", "TEXT"), ("crop_at", "TEXT"))


def migrate_to_v3(conn: sqlite3.Connection) -> None:
    """Add schema 3's columns (after migrate_v1_to_v2 for a version-1 file)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(region_scans)")}
    for name, kind in V3_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE region_scans ADD COLUMN {name} {kind}")


#: Columns schema 4 added: whether the models abstained, and the score.
V4_COLUMNS: tuple[tuple[str, str], ...] = (
    ("abstained", "INTEGER NOT NULL DEFAULT 0"), ("abstention_score", "REAL"),
)


def migrate_to_v4(conn: sqlite3.Connection) -> None:
    """Add schema 4's columns: an older scan was graded with no abstention check."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(region_scans)")}
    for name, kind in V4_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE region_scans ADD COLUMN {name} {kind}")


def migrate_to_v5(conn: sqlite3.Connection) -> None:
    """Schema 5: the lesions table and each scan's lesion (None: not a followed lesion).
    Self-contained and idempotent: run on every file older than 5, a new one included."""
    conn.execute("""CREATE TABLE IF NOT EXISTS lesions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        patient_id TEXT NOT NULL REFERENCES patients(id),
        region TEXT NOT NULL,
        site TEXT NOT NULL,
        label TEXT NOT NULL,
        first_visit_id INTEGER REFERENCES visits(id),
        created TEXT NOT NULL)""")
    conn.execute("CREATE INDEX IF NOT EXISTS lesions_patient ON lesions(patient_id)")
    have = {r[1] for r in conn.execute("PRAGMA table_info(region_scans)")}
    if "lesion_id" not in have:
        conn.execute("ALTER TABLE region_scans ADD COLUMN lesion_id INTEGER REFERENCES lesions(id)")
    conn.execute("CREATE INDEX IF NOT EXISTS region_scans_lesion ON region_scans(lesion_id)")


def migrate_to_v6(conn: sqlite3.Connection) -> None:
    """Add schema 6's column ``colour`` (JSON of device.colour.correct.ColourCorrection;
    NULL: a scan from before colour correction, or one that stopped at quality). Also
    run on a new file: the column is not in SCHEMA, so this stays the one place."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(region_scans)")}
    if "colour" not in have:
        conn.execute("ALTER TABLE region_scans ADD COLUMN colour TEXT")


def migrate_to_v7(conn: sqlite3.Connection) -> None:
    """Add schema 7's column ``review_reasons`` (JSON: sign -> the reasons the model's
    grade needs review; NULL: a scan from before 7, whose reasons were never kept). Also
    run on a new file: the column is not in SCHEMA, so this stays the one place."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(region_scans)")}
    if "review_reasons" not in have:
        conn.execute("ALTER TABLE region_scans ADD COLUMN review_reasons TEXT")


def migrate_to_v8(conn: sqlite3.Connection) -> None:
    """Add schema 8's column ``result`` (JSON of device.core.scanrecord.Scan; NULL: a scan
    from before 8, or one recorded by hand). Also run on a new file, as migrate_to_v7."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(region_scans)")}
    if "result" not in have:
        conn.execute("ALTER TABLE region_scans ADD COLUMN result TEXT")


def result_to_json(result: Scan | None) -> str | None:
    return json.dumps(result.to_dict(), sort_keys=True) if result is not None else None


def result_from_json(text: str | None) -> Scan | None:
    return Scan.from_dict(json.loads(text)) if text else None


def reasons_to_json(reasons: dict[Sign, list[str]]) -> str | None:
    """The ``review_reasons`` column's text: only the signs with a reason."""
    kept = {s.value: list(r) for s, r in reasons.items() if r}
    return json.dumps(kept, sort_keys=True) if kept else None


def reasons_from_json(text: str | None) -> dict[Sign, list[str]]:
    return {Sign(k): list(v) for k, v in json.loads(text).items()} if text else {}


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
    image_saved_at TEXT,
    frame_path TEXT,
    crop_box TEXT,
    crop_mode TEXT,
    quality TEXT,
    reviewed_by TEXT,
    reviewed_role TEXT,
    reviewed_at TEXT,
    crop_by TEXT,
    crop_at TEXT,
    abstained INTEGER NOT NULL DEFAULT 0,
    abstention_score REAL
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
    role: str | None = None  # the user's role when they overrode (None before schema 2)


@dataclass(frozen=True)
class Review:
    """Who confirmed a scan's grades (saved the review), in which role, when."""

    user: str
    at: str
    role: str | None = None


@dataclass(frozen=True)
class Capture:
    """How a scan was taken, kept beside it: the full-resolution frame, the square
    (x, y, w, h, in frame pixels) the models graded, the crop mode that chose it and
    the quality measures (device.vision.quality.measure)."""

    frame: Any = field(default=None, repr=False)  # RGB uint8 numpy array, or None
    box: tuple[int, int, int, int] | None = None
    crop_mode: str | None = None
    quality: dict[str, float] = field(default_factory=dict)
    #: The models abstained (device.grading.abstain): no model grades; the score (above 1
    #: abstains), None when the pack could not tell.
    abstained: bool = False
    abstention_score: float | None = None
    #: The scan's colour step (device.colour.correct), None when it did not run.
    colour: ColourCorrection | None = None
    #: Why each sign's grade needs review (device.scan.pipeline.review_reasons); a sign
    #: missing or with no reasons needs none.
    review_reasons: dict[Sign, list[str]] = field(default_factory=dict)
    #: The pipeline's whole result, kept as it was (schema 8); None for a scan by hand.
    result: Scan | None = None


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
    image_path: str | None = None  # relative to the data dir: the graded crop
    frame_path: str | None = None  # relative to the data dir: the full frame
    crop_box: tuple[int, int, int, int] | None = None
    crop_mode: str | None = None
    quality: dict[str, float] = field(default_factory=dict)
    reviewed: Review | None = None
    crop_by: str | None = None  # who moved the crop square (crop_mode "moved"), and when
    crop_at: str | None = None
    abstained: bool = False  # the models abstained (device.grading.abstain): no model grades
    abstention_score: float | None = None
    lesion_id: int | None = None  # the followed lesion this scan is of (schema 5)
    colour: ColourCorrection | None = None  # schema 6: the colour step, None before it
    #: schema 7: why each sign needs review (only signs with a reason; empty before 7)
    review_reasons: dict[Sign, list[str]] = field(default_factory=dict)
    #: schema 8: the pipeline's result as it was (the last regrade's after a moved square);
    #: None before 8 and for a region recorded by hand. Not in to_dict: the API's ``details``.
    result: Scan | None = None

    @property
    def colour_corrected(self) -> bool:
        return self.colour is not None and self.colour.corrected

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
            "image_path": self.image_path, "frame_path": self.frame_path,
            "crop_box": list(self.crop_box) if self.crop_box else None,
            "crop_mode": self.crop_mode, "quality": dict(self.quality),
            "reviewed": asdict(self.reviewed) if self.reviewed else None,
            "crop_by": self.crop_by, "crop_at": self.crop_at,
            "abstained": self.abstained, "abstention_score": self.abstention_score,
            "lesion_id": self.lesion_id,
            "colour": self.colour.to_dict() if self.colour else None,
            "review_reasons": {s.value: list(r) for s, r in self.review_reasons.items()},
        }


def scan_from_row(row: sqlite3.Row) -> RegionScan:
    overrides = {}
    for sign in MODEL_SIGNS:
        by = row[f"{final_col(sign)}_by"]
        if by:
            overrides[sign] = Override(by, row[f"{final_col(sign)}_at"], row[f"{final_col(sign)}_role"])
    return RegionScan(
        id=row["id"], visit_id=row["visit_id"], region=Region(row["region"]),
        taken_at=row["taken_at"], pack_version=row["pack_version"], review=bool(row["review"]),
        model_grades={s: row[model_col(s)] for s in MODEL_SIGNS},
        probs={s: json.loads(row[prob_col(s)]) if row[prob_col(s)] else None for s in MODEL_SIGNS},
        final_grades={s: row[final_col(s)] for s in MODEL_SIGNS},
        overrides=overrides, papulation=row["papulation"], area_percent=row["area_percent"],
        clinician_by=row["clinician_by"], clinician_at=row["clinician_at"],
        image_path=row["image_path"], frame_path=row["frame_path"],
        crop_box=tuple(json.loads(row["crop_box"])) if row["crop_box"] else None,
        crop_mode=row["crop_mode"],
        quality=json.loads(row["quality"]) if row["quality"] else {},
        reviewed=Review(row["reviewed_by"], row["reviewed_at"], row["reviewed_role"])
        if row["reviewed_by"] else None,
        crop_by=row["crop_by"], crop_at=row["crop_at"],
        abstained=bool(row["abstained"]), abstention_score=row["abstention_score"],
        lesion_id=row["lesion_id"],
        colour=ColourCorrection.from_dict(json.loads(row["colour"])) if row["colour"] else None,
        review_reasons=reasons_from_json(row["review_reasons"]),
        result=result_from_json(row["result"]),
    )


@dataclass(frozen=True)
class Lesion:
    """One lesion of a patient, followed visit after visit: where it is (EASI region and
    the site, e.g. "antecubital fossa, left"), a short label staff know it by, and the
    visit it was first scanned at."""

    id: int
    patient_id: str
    region: Region
    site: str
    label: str
    first_visit_id: int | None
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "region": self.region.value}


def lesion_from_row(row: sqlite3.Row) -> Lesion:
    return Lesion(**{**dict(row), "region": Region(row["region"])})


@dataclass(frozen=True)
class VisitRecord:
    """One visit with everything its exports need (CSV, JSON, FHIR), typed."""

    patient: Patient
    visit: Visit
    age: int | None
    scans: list[RegionScan]  # every scan of the visit, oldest first
    latest: dict[Region, RegionScan]  # the scan EASI uses for each examined region
    changes: dict[int, list[dict[str, Any]]]  # scan id -> its grade changes
    easi: EasiResult
    lesions: dict[int, Lesion] = field(default_factory=dict)  # the scans' lesions by id

    def parts(self) -> dict[str, Any]:
        """The fields by name, as they are (a template's keyword arguments)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary_dict(self) -> dict[str, Any]:
        """What ``GET /api/visits/<id>`` answers."""
        return {
            "visit": self.visit.to_dict(), "patient": self.patient.to_dict(), "age": self.age,
            "easi": self.easi.to_dict(),
            "latest": {r.value: s.to_dict() for r, s in self.latest.items()},
            "scans": [s.to_dict() for s in self.scans],
        }

    def missing_for(self, region: Region) -> list[str]:
        """What the region still needs before EASI can use it."""
        return [str(m) for m in self.easi.missing if m.region is region]

    def to_dict(self) -> dict[str, Any]:
        """The JSON export (format ``atopiscan.visit/1``)."""
        used = {s.id for s in self.latest.values()}
        return {
            "format": "atopiscan.visit/1",
            "patient": self.patient.to_dict(),
            "visit": self.visit.to_dict(),
            "age": self.age,
            "scans": [{**s.to_dict(), "used_for_easi": s.id in used,
                       "changes": self.changes.get(s.id, [])} for s in self.scans],
            "lesions": [lesion.to_dict() for lesion in self.lesions.values()],
            "easi": self.easi.to_dict(),
        }

    def lesion_of(self, scan: RegionScan) -> Lesion | None:
        return self.lesions.get(scan.lesion_id) if scan.lesion_id is not None else None
