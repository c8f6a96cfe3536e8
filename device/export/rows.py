"""What a data export holds: which scans (the filter), one manifest row per scan, and
the provenance record. ``device.export.dataset`` writes the files.

Manifest columns: the trainer's layout first (``path, patient_id, region`` and the
three final grades), then where the row came from. A final grade of 1.5 or 2.5
(EASI allows half points) has no class among the models' four: its grade column is
left blank, and ``<sign>_final`` keeps the staff's value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass

from device.core.vocab import MODEL_SIGNS
from device.store.schema import RegionScan, scan_from_row

log = logging.getLogger(__name__)

FORMAT = "atopiscan.device-export/1"
MANIFEST_NAME = "manifest.csv"
PROVENANCE_NAME = "provenance.json"
CROPS_DIR = "crops"
FRAMES_DIR = "frames"
#: Age bands (first year of each); the last is open. 0-7 / 8+ is EASI's weight boundary.
AGE_BANDS = (0, 2, 8, 12, 18, 40, 65)

BASE_COLUMNS = ("path", "patient_id", "region", *(s.value for s in MODEL_SIGNS))
INFO_COLUMNS = ("scan_id", "visit_date", "taken_at", "age_band", "reviewed", "reviewed_role",
                "pack_version", "abstained", "abstention_score", "crop_mode", "crop_box",
                "frame_path", "lesion_id", "lesion_site", "colour_status", "colour_card",
                "colour_delta_e", "colour_gamma", "colour_matrix")


def sign_columns() -> tuple[str, ...]:
    cols: list[str] = []
    for sign in MODEL_SIGNS:
        s = sign.value
        cols += [f"{s}_final", f"{s}_model", f"{s}_probs", f"{s}_overridden", f"{s}_override_role"]
    return tuple(cols)


@dataclass(frozen=True)
class ExportFilter:
    """Which scans: visit dates from ``since`` to ``until`` (inclusive), reviewed ones
    only unless ``include_unreviewed``; ``full_frames`` adds the blurred frames."""

    since: dt.date | None = None
    until: dt.date | None = None
    include_unreviewed: bool = False
    full_frames: bool = False

    def describe(self) -> str:
        parts = []
        if self.since:
            parts.append(f"from {self.since.isoformat()}")
        if self.until:
            parts.append(f"until {self.until.isoformat()}")
        return (" " + " ".join(parts)) if parts else ""

    def to_dict(self) -> dict:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "include_unreviewed": self.include_unreviewed, "full_frames": self.full_frames}


@dataclass(frozen=True)
class ExportRow:
    scan: RegionScan
    patient_id: str
    visit_date: str
    birth_year: int | None
    lesion_site: str | None = None  # the followed lesion's site (schema 5), if any

    @property
    def age_band(self) -> str:
        if self.birth_year is None:
            return ""
        return age_band(int(self.visit_date[:4]) - self.birth_year)


def age_band(age: int) -> str:
    """'0-1', '2-7', ..., '65+' for an age in years."""
    age = max(0, age)
    for lo, hi in zip(AGE_BANDS, AGE_BANDS[1:], strict=False):
        if lo <= age < hi:
            return f"{lo}-{hi - 1}"
    return f"{AGE_BANDS[-1]}+"


def whole_grade(value: float | None) -> int | None:
    return int(value) if value is not None and float(value).is_integer() else None


def read_rows(conn: sqlite3.Connection, flt: ExportFilter) -> list[ExportRow]:
    """The matching scans that carry a trainable grade (a whole final grade for at least
    one sign), by scan id. Run inside ``Store.snapshot``."""
    where, args = [], []
    if flt.since:
        where.append("v.date >= ?")
        args.append(flt.since.isoformat())
    if flt.until:
        where.append("v.date <= ?")
        args.append(flt.until.isoformat())
    if not flt.include_unreviewed:
        where.append("r.reviewed_by IS NOT NULL")
    sql = ("SELECT r.*, v.date AS visit_date, v.patient_id AS patient_id, p.birth_year AS "
           "birth_year, l.site AS lesion_site FROM region_scans r JOIN visits v ON v.id = r.visit_id "
           "JOIN patients p ON p.id = v.patient_id LEFT JOIN lesions l ON l.id = r.lesion_id"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY r.id")
    rows = []
    for r in conn.execute(sql, args):
        scan = scan_from_row(r)
        if any(whole_grade(scan.final_grades.get(s)) is not None for s in MODEL_SIGNS):
            rows.append(ExportRow(scan, r["patient_id"], r["visit_date"], r["birth_year"],
                                  r["lesion_site"]))
    return rows


def _num(value: float | None) -> str:
    return "" if value is None else f"{float(value):g}"


def colour_record(scan: RegionScan) -> dict[str, str]:
    """The scan's colour step (device.colour.correct). The crop is exported as graded
    (corrected when the status is "corrected"); the frame as the camera took it, so
    ``colour_gamma`` (the tone curve the fit found: "srgb", or a power law's exponent) and
    ``colour_matrix`` (9 numbers, row by row: ``corrected = decode(observed) @ M`` in
    linear sRGB) correct it the same way. Blank before schema 5 or when no card was fitted."""
    colour = scan.colour
    if colour is None:
        return {"colour_status": "", "colour_card": "", "colour_delta_e": "",
                "colour_gamma": "", "colour_matrix": ""}
    return {"colour_status": colour.status.value,
            "colour_card": colour.card.value if colour.card else "",
            "colour_delta_e": _num(colour.delta_e),
            "colour_gamma": ("srgb" if colour.gamma is None else _num(colour.gamma))
            if colour.matrix else "",
            "colour_matrix": " ".join(f"{v:.6g}" for row in colour.matrix for v in row)
            if colour.matrix else ""}


def manifest_record(row: ExportRow, path: str, frame_path: str) -> dict[str, str]:
    scan = row.scan
    rec = {"path": path, "patient_id": row.patient_id, "region": scan.region.value,
           "scan_id": str(scan.id), "visit_date": row.visit_date, "taken_at": scan.taken_at,
           "age_band": row.age_band, "reviewed": "1" if scan.reviewed else "0",
           "reviewed_role": (scan.reviewed.role or "") if scan.reviewed else "",
           "pack_version": scan.pack_version or "", "abstained": "1" if scan.abstained else "0",
           "abstention_score": _num(scan.abstention_score), "crop_mode": scan.crop_mode or "",
           "crop_box": " ".join(str(v) for v in scan.crop_box) if scan.crop_box else "",
           "frame_path": frame_path,
           "lesion_id": "" if scan.lesion_id is None else str(scan.lesion_id),
           "lesion_site": row.lesion_site or "", **colour_record(scan)}
    for sign in MODEL_SIGNS:
        s, final, model = sign.value, scan.final_grades.get(sign), scan.model_grades.get(sign)
        grade = whole_grade(final)
        probs = scan.probs.get(sign)
        over = scan.overrides.get(sign)
        changed = over is not None and final != model
        rec.update({s: "" if grade is None else str(grade), f"{s}_final": _num(final),
                    f"{s}_model": "" if model is None else str(model),
                    f"{s}_probs": " ".join(f"{p:.4f}" for p in probs) if probs else "",
                    f"{s}_overridden": "1" if changed else "0",
                    f"{s}_override_role": (over.role or "unknown") if changed and over else ""})
    for name, value in sorted(scan.quality.items()):
        rec[f"quality_{name}"] = _num(value)
    return rec


def manifest_header(records: list[dict[str, str]]) -> list[str]:
    quality = sorted({k for r in records for k in r if k.startswith("quality_")})
    return [*BASE_COLUMNS, *INFO_COLUMNS, *sign_columns(), *quality]


def provenance(rows: list[ExportRow], records: list[dict[str, str]], flt, *, device_name: str,
               software_version: str, exported_by: str, exported_at: dt.datetime,
               skipped: int, faces_blurred: int) -> dict:
    """Where the export came from, what it holds, and a digest of its rows."""
    kept = {int(r["scan_id"]) for r in records}
    used = [row for row in rows if row.scan.id in kept]
    packs = Counter(row.scan.pack_version or "none" for row in used)
    half = {s.value: sum(1 for r in records if r[f"{s.value}_final"] and not r[s.value])
            for s in MODEL_SIGNS}
    digest = hashlib.sha256("\n".join(
        ",".join(r.get(k, "") for k in manifest_header(records)) for r in records).encode())
    return {
        "format": FORMAT, "device_name": device_name, "software_version": software_version,
        "exported_at": exported_at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "exported_by": exported_by, "filter": flt.to_dict(),
        "packs": [{"version": v, "scans": n} for v, n in sorted(packs.items())],
        "counts": {
            "scans": len(records), "patients": len({row.patient_id for row in used}),
            "reviewed": sum(1 for row in used if row.scan.reviewed),
            "unreviewed": sum(1 for row in used if not row.scan.reviewed),
            "overridden": {s.value: sum(1 for r in records if r[f"{s.value}_overridden"] == "1")
                           for s in MODEL_SIGNS},
            "half_point_grades_left_blank": half,
            "left_out_without_image": skipped, "faces_blurred": faces_blurred,
        },
        "rows_sha256": digest.hexdigest(),
        "privacy": "patient ids are the device's pseudonyms; birth years are not exported, "
                   "age bands are",
    }
