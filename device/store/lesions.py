"""Lesions followed visit after visit: each belongs to a patient, has a region, a site
and a short label, and remembers the visit it was first scanned at. A scan can be of a
lesion (``region_scans.lesion_id``), and a new lesion can be started from a scan."""

from __future__ import annotations

import logging
import sqlite3

from device.core.vocab import Region
from device.store.patients import PatientRecords
from device.store.schema import (
    Lesion,
    RecordNotFoundError,
    RegionScan,
    StoreError,
    lesion_from_row,
    scan_from_row,
)

log = logging.getLogger(__name__)

#: Longest site and label kept (they show on a 7-inch screen and in exports).
MAX_TEXT = 80


def _text(value: str | None, what: str, *, default: str | None = None) -> str:
    text = " ".join((value or "").split())
    if not text and default:
        text = default
    if not text:
        raise StoreError(f"lesion {what}: give a short text, e.g. 'left antecubital fossa'")
    if len(text) > MAX_TEXT:
        raise StoreError(f"lesion {what}: {len(text)} characters; keep it under {MAX_TEXT}")
    return text


class LesionRecords(PatientRecords):
    def create_lesion(self, patient_id: str, region: Region, site: str, label: str | None = None,
                      *, first_visit_id: int | None = None) -> Lesion:
        """A new lesion of ``patient_id`` (the label defaults to the site)."""
        region = Region(region)
        site = _text(site, "site")
        label = _text(label, "label", default=site)
        self.get_patient(patient_id)
        with self._tx() as conn:
            lesion_id = self._insert_lesion(conn, patient_id, region, site, label, first_visit_id)
        return self.get_lesion(lesion_id)

    def _insert_lesion(self, conn: sqlite3.Connection, patient_id: str, region: Region, site: str,
                       label: str, first_visit_id: int | None) -> int:
        if first_visit_id is not None:
            row = conn.execute("SELECT patient_id FROM visits WHERE id = ?",
                               (first_visit_id,)).fetchone()
            if row is None or row["patient_id"] != patient_id:
                raise StoreError(f"visit {first_visit_id} is not a visit of patient {patient_id}")
        return int(conn.execute(
            "INSERT INTO lesions(patient_id, region, site, label, first_visit_id, created) "
            "VALUES (?,?,?,?,?,?)",
            (patient_id, region.value, site, label, first_visit_id, self._now())).lastrowid)

    def start_lesion_from_scan(self, scan_id: int, site: str, label: str | None = None) -> Lesion:
        """Start following the lesion scan ``scan_id`` shows: a new lesion of the visit's
        patient, in the scan's region, first scanned at its visit; the scan is its first."""
        site = _text(site, "site")
        label = _text(label, "label", default=site)
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM region_scans WHERE id = ?", (scan_id,)).fetchone()
            if row is None:
                raise RecordNotFoundError(f"no scan {scan_id}")
            if row["lesion_id"] is not None:
                raise StoreError(f"scan {scan_id} is already of lesion {row['lesion_id']}")
            visit = self._open_visit_row(conn, row["visit_id"])
            lesion_id = self._insert_lesion(conn, visit["patient_id"], Region(row["region"]),
                                            site, label, visit["id"])
            conn.execute("UPDATE region_scans SET lesion_id = ? WHERE id = ?", (lesion_id, scan_id))
        log.info("scan %s starts lesion %s (%s)", scan_id, lesion_id, label)
        return self.get_lesion(lesion_id)

    def set_scan_lesion(self, scan_id: int, lesion_id: int | None) -> RegionScan:
        """Mark scan ``scan_id`` as a scan of ``lesion_id`` (None: of no followed lesion)."""
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM region_scans WHERE id = ?", (scan_id,)).fetchone()
            if row is None:
                raise RecordNotFoundError(f"no scan {scan_id}")
            visit = self._open_visit_row(conn, row["visit_id"])
            if lesion_id is not None:
                self._check_lesion(conn, lesion_id, visit["patient_id"])
            conn.execute("UPDATE region_scans SET lesion_id = ? WHERE id = ?", (lesion_id, scan_id))
            row = conn.execute("SELECT * FROM region_scans WHERE id = ?", (scan_id,)).fetchone()
        return scan_from_row(row)

    def _check_lesion(self, conn: sqlite3.Connection, lesion_id: int, patient_id: str) -> Lesion:
        row = conn.execute("SELECT * FROM lesions WHERE id = ?", (lesion_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no lesion {lesion_id}")
        if row["patient_id"] != patient_id:
            raise StoreError(f"lesion {lesion_id} belongs to another patient, not {patient_id}")
        return lesion_from_row(row)

    def get_lesion(self, lesion_id: int) -> Lesion:
        row = self._conn().execute("SELECT * FROM lesions WHERE id = ?", (lesion_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no lesion {lesion_id}")
        return lesion_from_row(row)

    def list_lesions(self, patient_id: str) -> list[Lesion]:
        """The patient's lesions, oldest first; RecordNotFoundError for an unknown patient."""
        self.get_patient(patient_id)
        rows = self._conn().execute(
            "SELECT * FROM lesions WHERE patient_id = ? ORDER BY id", (patient_id,))
        return [lesion_from_row(r) for r in rows]

    def lesion_scans(self, lesion_id: int) -> list[RegionScan]:
        """The lesion's scans, one per visit (the visit's latest of it), oldest visit first."""
        self.get_lesion(lesion_id)
        rows = self._conn().execute(
            "SELECT r.* FROM region_scans r JOIN visits v ON v.id = r.visit_id "
            "WHERE r.lesion_id = ? ORDER BY v.date, v.id, r.taken_at, r.id", (lesion_id,))
        by_visit: dict[int, RegionScan] = {}
        for row in rows:
            by_visit[row["visit_id"]] = scan_from_row(row)  # later rows replace earlier ones
        return list(by_visit.values())

    def last_lesion_scan(self, lesion_id: int, *, before_visit: int | None = None
                         ) -> RegionScan | None:
        """The lesion's latest scan with a kept frame and crop box (what a follow-up aims
        at and registers to), from a visit other than ``before_visit``; None if none."""
        for scan in reversed(self.lesion_scans(lesion_id)):
            if scan.visit_id != before_visit and scan.frame_path and scan.crop_box:
                return scan
        return None
