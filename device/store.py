"""The scan store: patients, visits and region scans in SQLite (WAL) in the data dir.

Every save is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so a process
killed mid-save leaves the previous state whole. An image file is written
atomically (temp file, fsync, rename) *before* the row that names it commits; a
kill in between leaves at most an orphan file, which ``purge_expired`` sweeps.

One SQLite connection per thread (the dashboard runs under waitress threads);
WAL lets readers run while one writer writes. Users are the dashboard's own
table (device.web), not this module's: this store records who changed what
as the user name it is given.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from device.atomic import atomic_write_bytes
from device.easi import EasiResult, RegionRecord, compute_easi, validate_area, validate_grade
from device.imageio import encode_jpeg, encode_png
from device.storemodel import (
    SCHEMA,
    SCHEMA_VERSION,
    Capture,
    Patient,
    RecordNotFoundError,
    RegionScan,
    StoreError,
    Visit,
    VisitStatus,
    final_col,
    migrate_v1_to_v2,
    model_col,
    prob_col,
    scan_from_row,
)
from device.vocab import MODEL_SIGNS, NUM_GRADES, Region, Sign

log = logging.getLogger(__name__)

DB_NAME = "atopiscan.sqlite3"
IMAGES_DIR = "images"
_PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Orphan image files (written, but their row never committed) younger than this
#: are left alone: a save may be between its file write and its commit.
ORPHAN_GRACE = dt.timedelta(hours=1)

#: Test hook: called between the writes of one save (tests/test_store.py kills the
#: process while it runs, to prove the save is all-or-nothing). None in production.
_mid_save_hook: Callable[[str], None] | None = None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("use timezone-aware datetimes (e.g. datetime.now(timezone.utc))")
    return when.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def encode_image(image: np.ndarray | bytes, *, lossless: bool = False) -> tuple[bytes, str]:
    """Encoded bytes and suffix: bytes are kept as given (JPEG/PNG); RGB arrays become
    PNG when ``lossless`` (the graded crop: its pixels are training data), else JPEG."""
    if isinstance(image, (bytes, bytearray)):
        suffix = ".png" if bytes(image[:8]) == b"\x89PNG\r\n\x1a\n" else ".jpg"
        return bytes(image), suffix
    try:
        return (encode_png(image), ".png") if lossless else (encode_jpeg(image, 92), ".jpg")
    except ValueError as exc:
        raise StoreError(f"scan image: {exc}") from exc


class Store:
    """SQLite scan store. ``Store(data_dir)`` creates the database on first use."""

    def __init__(self, data_dir: Path | str, *, keep_images: bool = True, retention_days: int = 365,
                 keep_frames: bool = True, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / DB_NAME
        self.images_dir = self.data_dir / IMAGES_DIR
        self.keep_images = keep_images
        self.keep_frames = keep_frames
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
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def from_config(cls, config: Any) -> Store:
        """From a device.config.DeviceConfig (its ``storage`` section)."""
        s = config.storage
        return cls(s.data_dir, keep_images=s.keep_images, retention_days=s.retention_days,
                   keep_frames=s.keep_frames)

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
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
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
        return _iso(self.clock())

    # -- patients --------------------------------------------------------------------
    def create_patient(self, patient_id: str, birth_year: int | None) -> Patient:
        if not _PATIENT_ID.match(patient_id or ""):
            raise StoreError(f"patient id {patient_id!r}: use 1-64 letters, digits, '.', '_' or '-' "
                             "(a pseudonym, never a name)")
        this_year = self.clock().year
        if birth_year is not None and not 1900 <= birth_year <= this_year:
            raise StoreError(f"birth year {birth_year} is not between 1900 and {this_year}")
        try:
            with self._tx() as conn:
                conn.execute("INSERT INTO patients(id, birth_year, created) VALUES (?, ?, ?)",
                             (patient_id, birth_year, self._now()))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"patient {patient_id} already exists") from exc
        return self.get_patient(patient_id)

    def get_patient(self, patient_id: str) -> Patient:
        row = self._conn().execute("SELECT * FROM patients WHERE id = ?", (patient_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no patient {patient_id!r}")
        return Patient(**dict(row))

    def list_patients(self, search: str | None = None) -> list[Patient]:
        sql, args = "SELECT * FROM patients", ()
        if search:
            sql, args = sql + " WHERE id LIKE ? ESCAPE '\\'", (
                "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",)
        return [Patient(**dict(r)) for r in self._conn().execute(sql + " ORDER BY id", args)]

    # -- visits ----------------------------------------------------------------------
    def open_visit(self, patient_id: str, date: dt.date | None = None) -> Visit:
        """The patient's open visit on ``date`` (today by default), created if none."""
        self.get_patient(patient_id)
        day = (date or self.clock().date()).isoformat()
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM visits WHERE patient_id = ? AND date = ? AND status = ?",
                               (patient_id, day, VisitStatus.OPEN.value)).fetchone()
            if row is None:
                now = self._now()
                visit_id = conn.execute(
                    "INSERT INTO visits(patient_id, date, status, created, updated) VALUES (?,?,?,?,?)",
                    (patient_id, day, VisitStatus.OPEN.value, now, now)).lastrowid
            else:
                visit_id = row["id"]
        return self.get_visit(int(visit_id))

    def get_visit(self, visit_id: int) -> Visit:
        row = self._conn().execute("SELECT * FROM visits WHERE id = ?", (visit_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no visit {visit_id}")
        return Visit(**{**dict(row), "status": VisitStatus(row["status"])})

    def list_visits(self, patient_id: str) -> list[Visit]:
        """The patient's visits, oldest first; StoreError for an unknown patient."""
        self.get_patient(patient_id)
        rows = self._conn().execute(
            "SELECT * FROM visits WHERE patient_id = ? ORDER BY date, id", (patient_id,))
        return [Visit(**{**dict(r), "status": VisitStatus(r["status"])}) for r in rows]

    def set_visit_status(self, visit_id: int, status: VisitStatus) -> Visit:
        status = VisitStatus(status)
        try:
            with self._tx() as conn:
                cur = conn.execute("UPDATE visits SET status = ?, updated = ? WHERE id = ?",
                                   (status.value, self._now(), visit_id))
                if cur.rowcount == 0:
                    raise RecordNotFoundError(f"no visit {visit_id}")
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"visit {visit_id}: the patient already has an open visit that day") from exc
        return self.get_visit(visit_id)

    def _open_visit_row(self, conn: sqlite3.Connection, visit_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM visits WHERE id = ?", (visit_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no visit {visit_id}")
        if row["status"] != VisitStatus.OPEN.value:
            raise StoreError(f"visit {visit_id} is {row['status']}; reopen it before changing it")
        return row

    # -- region scans ----------------------------------------------------------------
    def save_region_scan(
        self, visit_id: int, region: Region, *,
        grades: Mapping[Sign, int] | None = None,
        probs: Mapping[Sign, Sequence[float]] | None = None,
        review: bool = False, pack_version: str | None = None,
        image: np.ndarray | bytes | None = None, taken_at: dt.datetime | None = None,
        capture: Capture | None = None,
    ) -> RegionScan:
        """Record one scan of ``region``. ``grades`` are the model's 0-3 per model sign
        (None: a region recorded by hand, e.g. 0 % area). Papulation and area % carry
        over from the region's previous scan in this visit (a retake keeps them).
        ``image`` is the graded crop (an array is kept lossless); ``capture`` the full
        frame, crop box, crop mode and quality measures."""
        region = Region(region)
        grades = {Sign(s): g for s, g in (grades or {}).items()}
        probs = {Sign(s): [float(p) for p in v] for s, v in (probs or {}).items()}
        for sign, grade in grades.items():
            if sign not in MODEL_SIGNS:
                raise StoreError(f"{sign.value} is not graded by a model; enter it with "
                                 "set_clinician_entries")
            if isinstance(grade, bool) or int(grade) != grade or not 0 <= grade < NUM_GRADES:
                raise StoreError(f"model grade for {sign.value} is {grade!r}, not 0-3")
        for sign, p in probs.items():
            if sign not in MODEL_SIGNS or len(p) != NUM_GRADES:
                raise StoreError(f"probabilities for {sign.value}: need {NUM_GRADES} values")
        when = _iso(taken_at or self.clock())
        capture = capture or Capture()
        rel_path = self._keep(visit_id, image, lossless=True) if self.keep_images else None
        frame_path = (self._keep(visit_id, capture.frame, lossless=False)
                      if self.keep_images and self.keep_frames else None)
        cols = {"visit_id": visit_id, "region": region.value, "taken_at": when,
                "pack_version": pack_version, "review": int(bool(review)), "image_path": rel_path,
                "image_saved_at": when if rel_path or frame_path else None,
                "frame_path": frame_path, "crop_mode": capture.crop_mode,
                "crop_box": json.dumps([int(v) for v in capture.box]) if capture.box else None,
                "quality": json.dumps({k: round(float(v), 4) for k, v in sorted(capture.quality.items())})
                if capture.quality else None}
        for sign in MODEL_SIGNS:
            g = grades.get(sign)
            cols[model_col(sign)] = None if g is None else int(g)
            cols[final_col(sign)] = None if g is None else float(g)
            cols[prob_col(sign)] = json.dumps(probs[sign]) if sign in probs else None
        try:
            with self._tx() as conn:
                self._open_visit_row(conn, visit_id)
                prev = conn.execute(
                    "SELECT papulation, area_percent, clinician_by, clinician_at FROM region_scans "
                    "WHERE visit_id = ? AND region = ? ORDER BY taken_at DESC, id DESC LIMIT 1",
                    (visit_id, region.value)).fetchone()
                if prev is not None:
                    cols.update(dict(prev))
                names = ", ".join(cols)
                scan_id = conn.execute(
                    f"INSERT INTO region_scans({names}) VALUES ({', '.join('?' * len(cols))})",
                    tuple(cols.values())).lastrowid
                self._hook("save_region_scan")
                conn.execute("UPDATE visits SET updated = ? WHERE id = ?", (self._now(), visit_id))
        except BaseException:
            for written in (rel_path, frame_path):
                if written:
                    (self.data_dir / written).unlink(missing_ok=True)
            raise
        log.info("visit %s: saved %s scan %s (pack %s)", visit_id, region.value, scan_id, pack_version)
        return self.get_scan(int(scan_id))

    def _keep(self, visit_id: int, image: np.ndarray | bytes | None, *, lossless: bool) -> str | None:
        """Write one image file of a scan; its path relative to the data dir."""
        if image is None:
            return None
        data, suffix = encode_image(image, lossless=lossless)
        rel = f"{IMAGES_DIR}/{visit_id}/{uuid.uuid4().hex}{suffix}"
        atomic_write_bytes(self.data_dir / rel, data)
        return rel

    def get_scan(self, scan_id: int) -> RegionScan:
        row = self._conn().execute("SELECT * FROM region_scans WHERE id = ?", (scan_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no scan {scan_id}")
        return scan_from_row(row)

    def list_scans(self, visit_id: int) -> list[RegionScan]:
        rows = self._conn().execute(
            "SELECT * FROM region_scans WHERE visit_id = ? ORDER BY taken_at, id", (visit_id,))
        return [scan_from_row(r) for r in rows]

    def latest_scans(self, visit_id: int) -> dict[Region, RegionScan]:
        """The scan EASI uses for each region: its latest in the visit."""
        return {s.region: s for s in self.list_scans(visit_id)}

    def image_file(self, scan: RegionScan) -> Path | None:
        """Absolute path of the scan's image, or None when not kept (or purged)."""
        if not scan.image_path:
            return None
        path = self.data_dir / scan.image_path
        return path if path.is_file() else None

    def _change(self, scan_id: int, updates: Mapping[str, Any], audit: list[tuple[str, Any, Any]],
                user: str, op: str) -> RegionScan:
        if not user or not user.strip():
            raise StoreError("a change needs the user who made it")
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM region_scans WHERE id = ?", (scan_id,)).fetchone()
            if row is None:
                raise RecordNotFoundError(f"no scan {scan_id}")
            self._open_visit_row(conn, row["visit_id"])
            now = self._now()
            sets = ", ".join(f"{k} = ?" for k in updates)
            conn.execute(f"UPDATE region_scans SET {sets} WHERE id = ?",
                         (*[now if v is _NOW else v for v in updates.values()], scan_id))
            self._hook(op)
            conn.executemany(
                "INSERT INTO grade_changes(scan_id, field, old, new, user, at) VALUES (?,?,?,?,?,?)",
                [(scan_id, field, row[col], new, user, now) for field, col, new in audit])
            conn.execute("UPDATE visits SET updated = ? WHERE id = ?", (now, row["visit_id"]))
        return self.get_scan(scan_id)

    def override_grade(self, scan_id: int, sign: Sign, grade: float, user: str,
                       role: str | None = None) -> RegionScan:
        """Staff replace a model grade (half points allowed); who (and in which role) and
        when are recorded, and every change is kept in grade_changes."""
        sign = Sign(sign)
        if sign not in MODEL_SIGNS:
            return self.set_clinician_entries(scan_id, papulation=grade, user=user)
        value = float(validate_grade(grade, what=sign.value))  # type: ignore[arg-type]
        col = final_col(sign)
        return self._change(scan_id, {col: value, f"{col}_by": user, f"{col}_at": _NOW,
                                      f"{col}_role": role},
                            [(sign.value, col, value)], user, "override_grade")

    def confirm_review(self, scan_id: int, user: str, role: str | None = None) -> RegionScan:
        """Staff stand behind the scan's final grades (changed or not): it is now a
        reviewed scan, which the data export and the field-agreement monitor count."""
        return self._change(scan_id, {"reviewed_by": user, "reviewed_role": role,
                                      "reviewed_at": _NOW}, [], user, "confirm_review")

    def set_clinician_entries(self, scan_id: int, *, papulation: float | None = None,
                              area_percent: float | None = None, user: str) -> RegionScan:
        """Papulation grade and/or area % from the clinician (None leaves a value as is)."""
        updates: dict[str, Any] = {}
        audit = []
        if papulation is not None:
            updates["papulation"] = float(validate_grade(papulation, what="papulation"))  # type: ignore[arg-type]
            audit.append((Sign.PAPULATION.value, "papulation", updates["papulation"]))
        if area_percent is not None:
            updates["area_percent"] = validate_area(area_percent)
            audit.append(("area_percent", "area_percent", updates["area_percent"]))
        if not updates:
            raise StoreError("give papulation and/or area_percent")
        updates.update(clinician_by=user, clinician_at=_NOW)
        return self._change(scan_id, updates, audit, user, "set_clinician_entries")

    def grade_changes(self, scan_id: int) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT field, old, new, user, at FROM grade_changes WHERE scan_id = ? ORDER BY id",
            (scan_id,))
        return [dict(r) for r in rows]

    # -- scores, history, export -----------------------------------------------------
    def visit_age(self, visit: Visit) -> int | None:
        """Age in years from the birth year (pseudonymous: no birthday), at the visit."""
        birth = self.get_patient(visit.patient_id).birth_year
        return None if birth is None else max(0, int(visit.date[:4]) - birth)

    def visit_summary(self, visit_id: int) -> EasiResult:
        visit = self.get_visit(visit_id)
        return self._easi(visit, self.latest_scans(visit_id))

    def _easi(self, visit: Visit, latest: Mapping[Region, RegionScan]) -> EasiResult:
        records = [
            RegionRecord(region, papulation=s.papulation, area_percent=s.area_percent,
                         **{sign.value: s.final_grades.get(sign) for sign in MODEL_SIGNS})
            for region, s in latest.items()
        ]
        return compute_easi(records, age=self.visit_age(visit))

    def patient_history(self, patient_id: str) -> list[dict[str, Any]]:
        """Per visit, oldest first: EASI (None while incomplete) and each sign's mean
        final grade over the regions scanned."""
        history = []
        for visit in self.list_visits(patient_id):
            latest = self.latest_scans(visit.id)
            result = self._easi(visit, latest)
            means: dict[str, float | None] = {}
            for sign in (*MODEL_SIGNS, Sign.PAPULATION):
                vals = [s.papulation if sign is Sign.PAPULATION else s.final_grades.get(sign)
                        for s in latest.values()]
                vals = [v for v in vals if v is not None]
                means[sign.value] = round(sum(vals) / len(vals), 3) if vals else None
            band = result.band
            history.append({"visit_id": visit.id, "date": visit.date, "status": visit.status.value,
                            "easi": result.total, "easi_display": result.total_display,
                            "band": band.value if band else None, "complete": result.complete,
                            "missing": [str(m) for m in result.missing], "sign_means": means})
        return history

    def export_visit(self, visit_id: int) -> dict[str, Any]:
        """Everything about one visit as JSON-safe data (for CSV, JSON or FHIR export)."""
        visit = self.get_visit(visit_id)
        patient = self.get_patient(visit.patient_id)
        scans = self.list_scans(visit_id)
        latest = self.latest_scans(visit_id)
        used = {s.id for s in latest.values()}
        return {
            "format": "atopiscan.visit/1",
            "patient": patient.to_dict(),
            "visit": visit.to_dict(),
            "age": self.visit_age(visit),
            "scans": [{**s.to_dict(), "used_for_easi": s.id in used,
                       "changes": self.grade_changes(s.id)} for s in scans],
            "easi": self._easi(visit, latest).to_dict(),
        }

    # -- retention -------------------------------------------------------------------
    def purge_expired(self, now: dt.datetime | None = None) -> int:
        """Delete image files older than ``retention_days`` and clear their paths; also
        remove orphan files no row names. Returns the number of files deleted."""
        now = now or self.clock()
        cutoff = _iso(now - dt.timedelta(days=self.retention_days))
        with self._tx() as conn:
            rows = conn.execute("SELECT id, image_path, frame_path FROM region_scans WHERE "
                                "(image_path IS NOT NULL OR frame_path IS NOT NULL) "
                                "AND image_saved_at < ?", (cutoff,)).fetchall()
            conn.executemany("UPDATE region_scans SET image_path = NULL, frame_path = NULL "
                             "WHERE id = ?", [(r["id"],) for r in rows])
        # Paths are cleared first: a kill here leaves orphan files, never a row naming a gone file.
        deleted = 0
        for r in rows:
            for rel in (r["image_path"], r["frame_path"]):
                path = self.data_dir / rel if rel else None
                if path is not None and path.exists():
                    path.unlink()
                    deleted += 1
        named = {p for r in self._conn().execute(
            "SELECT image_path, frame_path FROM region_scans") for p in r if p}
        grace = (now - ORPHAN_GRACE).timestamp()
        if self.images_dir.is_dir():
            for path in self.images_dir.rglob("*"):
                rel = path.relative_to(self.data_dir).as_posix()
                if path.is_file() and rel not in named and path.stat().st_mtime < grace:
                    path.unlink()
                    deleted += 1
        if deleted:
            log.info("purged %d image files older than %d days", deleted, self.retention_days)
        return deleted


class _Now:
    """Marker: the transaction's time goes here."""


_NOW = _Now()
