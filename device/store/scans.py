"""Region scans: save one (image files first, then the row, in one transaction),
read them back, and record every grade change with who made it and when.

An image file is written atomically *before* the row that names it commits; a kill
in between leaves at most an orphan file, which ``purge_expired`` sweeps.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.core.atomic import atomic_write_bytes
from device.core.easi import validate_area, validate_grade
from device.core.errors import storage_guard
from device.core.imageio import encode_jpeg, encode_png
from device.core.scanrecord import Scan
from device.core.vocab import MODEL_SIGNS, NUM_GRADES, CropMode, Region, Sign
from device.store.db import IMAGES_DIR, NOW, iso
from device.store.lesions import LesionRecords
from device.store.schema import (
    Capture,
    RecordNotFoundError,
    RegionScan,
    StoreError,
    final_col,
    model_col,
    prob_col,
    reasons_to_json,
    result_to_json,
    scan_from_row,
)

log = logging.getLogger(__name__)


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



def _checked_grades(grades: Mapping[Sign, int] | None, probs: Mapping[Sign, Sequence[float]] | None
                    ) -> tuple[dict[Sign, int], dict[Sign, list[float]]]:
    """The model's grades and probabilities keyed by Sign, or StoreError saying what is off."""
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
    return grades, probs


class ScanRecords(LesionRecords):
    def save_region_scan(
        self, visit_id: int, region: Region, *,
        grades: Mapping[Sign, int] | None = None,
        probs: Mapping[Sign, Sequence[float]] | None = None,
        review: bool = False, pack_version: str | None = None,
        image: np.ndarray | bytes | None = None, taken_at: dt.datetime | None = None,
        capture: Capture | None = None, lesion_id: int | None = None,
    ) -> RegionScan:
        """Record one scan of ``region``. ``grades`` are the model's 0-3 per model sign
        (None: a region recorded by hand, e.g. 0 % area). Papulation and area % carry
        over from the region's previous scan in this visit (a retake keeps them).
        ``image`` is the graded crop (an array is kept lossless); ``capture`` the full
        frame, crop box, crop mode and quality measures; ``lesion_id`` the followed lesion
        (of this visit's patient) the scan is of."""
        region = Region(region)
        grades, probs = _checked_grades(grades, probs)
        when = iso(taken_at or self.clock())
        capture = capture or Capture()
        rel_path, frame_path = self._keep_files(visit_id, image, capture)
        cols = {"visit_id": visit_id, "region": region.value, "taken_at": when,
                "pack_version": pack_version, "review": int(bool(review)), "image_path": rel_path,
                "image_saved_at": when if rel_path or frame_path else None,
                "frame_path": frame_path, "crop_mode": capture.crop_mode,
                "crop_box": json.dumps([int(v) for v in capture.box]) if capture.box else None,
                "quality": json.dumps({k: round(float(v), 4) for k, v in sorted(capture.quality.items())})
                if capture.quality else None,
                "abstained": int(capture.abstained), "abstention_score": capture.abstention_score,
                "lesion_id": lesion_id,
                "colour": json.dumps(capture.colour.to_dict()) if capture.colour else None,
                "review_reasons": reasons_to_json(capture.review_reasons),
                "result": result_to_json(capture.result)}
        for sign in MODEL_SIGNS:
            g = grades.get(sign)
            cols[model_col(sign)] = None if g is None else int(g)
            cols[final_col(sign)] = None if g is None else float(g)
            cols[prob_col(sign)] = json.dumps(probs[sign]) if sign in probs else None
        try:
            with self._tx() as conn:
                visit = self._open_visit_row(conn, visit_id)
                if lesion_id is not None:
                    self._check_lesion(conn, lesion_id, visit["patient_id"])
                    conn.execute("UPDATE lesions SET first_visit_id = ? WHERE id = ? AND "
                                 "first_visit_id IS NULL", (visit_id, lesion_id))
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

    def _keep_files(self, visit_id: int, image: np.ndarray | bytes | None,
                    capture: Capture) -> tuple[str | None, str | None]:
        """Write the graded crop (lossless) and, where kept, the full frame with faces
        blurred outside the crop; returns their paths relative to the data folder."""
        rel_path = self._keep(visit_id, image, lossless=True) if self.keep_images else None
        frame = capture.frame
        try:
            if frame is not None and self.redact_frame and self.keep_images and self.keep_frames:
                frame = self.redact_frame(frame, capture.box)  # the crop itself stays as graded
            frame_path = (self._keep(visit_id, frame, lossless=False)
                          if self.keep_images and self.keep_frames else None)
        except BaseException:  # e.g. the disk filled up between the two files
            if rel_path:
                (self.data_dir / rel_path).unlink(missing_ok=True)
            raise
        return rel_path, frame_path

    def _keep(self, visit_id: int, image: np.ndarray | bytes | None, *, lossless: bool) -> str | None:
        """Write one image file of a scan; its path relative to the data dir."""
        if image is None:
            return None
        data, suffix = encode_image(image, lossless=lossless)
        rel = f"{IMAGES_DIR}/{visit_id}/{uuid.uuid4().hex}{suffix}"
        with storage_guard("saving the scan image", self.data_dir):
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
                         (*[now if v is NOW else v for v in updates.values()], scan_id))
            self._hook(op)
            conn.executemany(
                "INSERT INTO grade_changes(scan_id, field, old, new, user, at) VALUES (?,?,?,?,?,?)",
                [(scan_id, field, row[col], new, user, now) for field, col, new in audit])
            conn.execute("UPDATE visits SET updated = ? WHERE id = ?", (now, row["visit_id"]))
        return self.get_scan(scan_id)

    def recrop_scan(self, scan_id: int, *, grades: Mapping[Sign, int],
                     probs: Mapping[Sign, Sequence[float]], review: bool,
                     image: np.ndarray, box: tuple[int, int, int, int], user: str,
                     review_reasons: Mapping[Sign, list[str]] | None = None,
                     result: Scan | None = None) -> RegionScan:
        """The recrop: staff moved the crop square on the scan's frame and the models graded
        it again:
        the new crop, box (crop mode "moved", by ``user``), model grades, probabilities and
        review flag (and its reasons) and the pipeline's ``result`` replace the old. An overridden sign keeps its override; the others'
        final grades follow the new model grades. Model grade changes are audited."""
        old = self.get_scan(scan_id)
        rel_path = self._keep(old.visit_id, image, lossless=True) if self.keep_images else None
        updates: dict[str, Any] = {
            "image_path": rel_path, "review": int(bool(review)), "crop_box": json.dumps(
                [int(v) for v in box]), "crop_mode": CropMode.MOVED.value, "crop_by": user,
            "crop_at": NOW, "review_reasons": reasons_to_json(dict(review_reasons or {})),
            "result": result_to_json(result)}
        audit = []
        for sign in MODEL_SIGNS:
            grade = int(grades[Sign(sign)])
            if not 0 <= grade < NUM_GRADES or len(probs[sign]) != NUM_GRADES:
                raise StoreError(f"recrop of scan {scan_id}: bad grade or probabilities for "
                                 f"{sign.value}")
            updates[model_col(sign)] = grade
            updates[prob_col(sign)] = json.dumps([float(p) for p in probs[sign]])
            if sign not in old.overrides:
                updates[final_col(sign)] = float(grade)
            if grade != old.model_grades.get(sign):
                audit.append((f"{sign.value} (model, recrop)", model_col(sign), grade))
        try:
            scan = self._change(scan_id, updates, audit, user, "recrop_scan")
        except BaseException:
            if rel_path:
                (self.data_dir / rel_path).unlink(missing_ok=True)
            raise
        if old.image_path and old.image_path != rel_path:
            (self.data_dir / old.image_path).unlink(missing_ok=True)  # the superseded crop
        return scan

    def override_grade(self, scan_id: int, sign: Sign, grade: float, user: str,
                       role: str | None = None) -> RegionScan:
        """Staff replace a model grade (half points allowed); who (and in which role) and
        when are recorded, and every change is kept in grade_changes."""
        sign = Sign(sign)
        if sign not in MODEL_SIGNS:
            return self.set_clinician_entries(scan_id, papulation=grade, user=user)
        value = float(validate_grade(grade, what=sign.value))  # type: ignore[arg-type]
        col = final_col(sign)
        return self._change(scan_id, {col: value, f"{col}_by": user, f"{col}_at": NOW,
                                      f"{col}_role": role},
                            [(sign.value, col, value)], user, "override_grade")

    def confirm_review(self, scan_id: int, user: str, role: str | None = None) -> RegionScan:
        """Staff stand behind the scan's final grades (changed or not): it is now a
        reviewed scan, which the data export and the field-agreement monitor count."""
        return self._change(scan_id, {"reviewed_by": user, "reviewed_role": role,
                                      "reviewed_at": NOW}, [], user, "confirm_review")

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
        updates.update(clinician_by=user, clinician_at=NOW)
        return self._change(scan_id, updates, audit, user, "set_clinician_entries")

    def grade_changes(self, scan_id: int) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT field, old, new, user, at FROM grade_changes WHERE scan_id = ? ORDER BY id",
            (scan_id,))
        return [dict(r) for r in rows]

