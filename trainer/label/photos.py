"""``label init``: import a folder of photos into a project.

Every ``.jpg/.jpeg/.png`` under the folder is decoded (EXIF orientation applied) to learn its
displayed size. Unreadable files are reported by path and skipped; a file whose sha256 is
already in the project (a duplicate, or a photo imported before) is skipped. Patient id and
body region come from a CSV (``path,patient_id,region``) or from folder names: the first
folder under DIR is the patient; a folder named like a region (``trunk``, ``head_neck``...)
is the region. A photo directly in DIR is its own patient (``photo-<sha256[:12]>``), so the
crops of one photo never straddle a train/validation split.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.core.imageio import PHOTO_SUFFIXES, ImageError, read_image
from device.core.vocab import Region, parse_region
from trainer.label.db import get_setting, transaction
from trainer.label.models import LabelError

log = logging.getLogger(__name__)

PATIENT_COLUMNS = ("path", "patient_id", "region")


@dataclass(frozen=True)
class PatientInfo:
    patient_id: str
    region: Region | None


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (path, same as)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def summary(self) -> str:
        lines = [f"added {len(self.added)} photo(s); skipped {len(self.duplicates)} already "
                 f"in the project or duplicate(s), {len(self.unreadable)} unreadable"]
        lines += [f"  unreadable: {why}" for _, why in self.unreadable]
        lines += [f"  duplicate: {p} (same sha256 as {same})" for p, same in self.duplicates]
        return "\n".join(lines)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_rgb(path: Path) -> np.ndarray:
    """The photo's pixels as displayed (EXIF orientation applied), or LabelError."""
    try:
        return read_image(path)
    except ImageError as exc:
        raise LabelError(str(exc)) from exc


def read_patients_csv(path: Path) -> dict[str, PatientInfo]:
    """path (relative to the photos folder) -> patient info. Any bad row: LabelError."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelError(f"cannot read patients CSV {path}: {exc}") from exc
    header = [h.strip().lower() for h in rows[0]] if rows else []
    missing = [c for c in PATIENT_COLUMNS if c not in header]
    if missing:
        raise LabelError(f"{path}: header lacks {', '.join(missing)}; expected "
                         f"{','.join(PATIENT_COLUMNS)}")
    col = {c: header.index(c) for c in PATIENT_COLUMNS}
    out: dict[str, PatientInfo] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise LabelError(f"{path} line {n}: {len(row)} fields, the header has {len(header)}")
        rel, pid, region = (row[col[c]].strip() for c in PATIENT_COLUMNS)
        if not rel or not pid:
            raise LabelError(f"{path} line {n}: path and patient_id must not be empty")
        try:
            out[Path(rel).as_posix()] = PatientInfo(pid, parse_region(region) if region else None)
        except ValueError as exc:
            raise LabelError(f"{path} line {n}: column region: {exc}") from None
    return out


def info_from_folders(rel: Path, sha256: str) -> PatientInfo:
    region = None
    for part in rel.parts[:-1]:
        try:
            region = parse_region(part)
        except ValueError:
            continue
    folders = [p for p in rel.parts[:-1] if region is None or p != region.value]
    return PatientInfo(folders[0] if folders else f"photo-{sha256[:12]}", region)


def is_overlap(sha256: str, share: float) -> bool:
    """Deterministic: the same photo is an overlap photo in every project with this share."""
    return share >= 1.0 or int(sha256[:8], 16) / 0x1_0000_0000 < share


def reassign_overlap(db: sqlite3.Connection) -> int:
    """Re-apply the overlap share to every photo (after ``init --overlap`` changed it);
    returns how many photos are overlap photos now. Call inside a transaction."""
    share = float(get_setting(db, "overlap_share") or 0.2)
    rows = db.execute("SELECT id, sha256 FROM photos").fetchall()
    db.executemany("UPDATE photos SET overlap = ? WHERE id = ?",
                   [(int(is_overlap(r["sha256"], share)), r["id"]) for r in rows])
    return sum(is_overlap(r["sha256"], share) for r in rows)


def import_photos(db: sqlite3.Connection, photos: Path,
                  patients: dict[str, PatientInfo] | None = None) -> ImportReport:
    """Add the photos under ``photos`` that are not in the project yet."""
    report = ImportReport()
    known = {r["sha256"]: r["relpath"] for r in db.execute("SELECT sha256, relpath FROM photos")}
    share = float(get_setting(db, "overlap_share") or 0.2)
    files = sorted(p for p in photos.rglob("*")
                   if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    rows = []
    for path in files:
        rel = path.relative_to(photos)
        if rel.as_posix() in known.values():
            continue
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if sha in known:
            report.duplicates.append((rel.as_posix(), known[sha]))
            continue
        try:
            h, w = read_rgb(path).shape[:2]
        except LabelError as exc:
            report.unreadable.append((rel.as_posix(), str(exc)))
            continue
        info = (patients or {}).get(rel.as_posix()) or info_from_folders(rel, sha)
        rows.append((rel.as_posix(), sha, w, h, info.patient_id,
                     info.region.value if info.region else None, int(is_overlap(sha, share)),
                     now()))
        known[sha] = rel.as_posix()
        report.added.append(rel.as_posix())
    with transaction(db):
        db.executemany("INSERT INTO photos (relpath, sha256, width, height, patient_id, region,"
                       " overlap, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    for rel, why in report.unreadable:
        log.warning("skipped unreadable photo %s: %s", rel, why)
    return report
