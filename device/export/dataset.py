"""Reviewed scans as a training data set: graded crops, ``manifest.csv``, ``provenance.json``.

The export is the device's half of the data loop (docs/ARCHITECTURE.md): every scan whose
grades staff confirmed becomes one row of the trainer's manifest layout
(``path, patient_id, region, erythema, excoriation, lichenification``) with the
staff's final grades, overrides applied. Extra columns (kept and ignored by
training) say where the row came from: visit date, age band (never the birth
year), the model's grades and probabilities, whether each grade was overridden and
by which role, pack version, crop mode and box, quality measures.

- Crops are the stored graded crop (the exact square the models graded, cut from
  the full-resolution frame and kept lossless since store schema 2), copied byte
  for byte; a scan without one but with its frame is cut from the frame.
- Everything is read in one read transaction (``Store.snapshot``), so the service
  may keep saving scans meanwhile.
- Deterministic: the same store and export time give byte-identical files (rows
  by scan id, file names from scan ids). The export time comes from the clock
  handed in (the CLI honours ``SOURCE_DATE_EPOCH``).
- Written to a temporary folder beside ``out`` and renamed into place: a full
  disk leaves no half-written export, and what a kill leaves is removed by the next
  export or service start (device.export.work, counted in the audit log).
- Never over patient data: ``out`` is checked first (device.export.target: not the
  data or packs folder, nor inside or above them, whatever ``force`` says) and again
  just before the old folder is replaced.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.core.imageio import encode_jpeg, encode_png
from device.export.rows import (
    CROPS_DIR,
    FRAMES_DIR,
    MANIFEST_NAME,
    PROVENANCE_NAME,
    ExportFilter,
    ExportRow,
    manifest_header,
    manifest_record,
    provenance,
    read_rows,
)
from device.export.target import (
    ExportError,
    NothingToExportError,
    OutputNotEmptyError,
    ProtectedOutputError,
    check_target,
    refuse_protected,
)
from device.export.work import WORK_DIR, ExportWork, old_path, partial_path, sweep_and_audit

log = logging.getLogger(__name__)

#: The errors live with the target checks (device.export.target); callers import them here.
__all__ = ["ExportError", "ExportResult", "NothingToExportError", "OutputNotEmptyError",
           "ProtectedOutputError", "check_target", "export_dataset"]


@dataclass(frozen=True)
class ExportResult:
    out: Path
    rows: int
    skipped: int
    faces_blurred: int
    provenance: dict


def _crop_bytes(data_dir: Path, row: ExportRow) -> tuple[bytes, str] | None:
    """The graded crop's file bytes and suffix, or None when neither it nor its frame is kept."""
    scan = row.scan
    if scan.image_path and (data_dir / scan.image_path).is_file():
        path = data_dir / scan.image_path
        return path.read_bytes(), path.suffix.lower()
    if scan.frame_path and scan.crop_box and (data_dir / scan.frame_path).is_file():
        frame = _read(data_dir / scan.frame_path)
        if frame is not None:
            x, y, w, h = scan.crop_box
            return encode_png(np.ascontiguousarray(frame[y:y + h, x:x + w])), ".png"
    return None


def _read(path: Path) -> np.ndarray | None:
    from device.core.imageio import ImageError, read_image

    try:
        return read_image(path)
    except ImageError as exc:
        log.warning("%s: %s; left out", path, exc)
        return None


def _blurred_frame(data_dir: Path, row: ExportRow) -> tuple[bytes, int] | None:
    """The full frame as JPEG with faces blurred outside the crop box, and the face count."""
    from device.vision.faces import blur_faces, find_faces

    scan = row.scan
    if not scan.frame_path or not (data_dir / scan.frame_path).is_file():
        return None
    rgb = _read(data_dir / scan.frame_path)
    if rgb is None:
        return None
    faces = find_faces(rgb, side=320, cats=False)  # as blur_faces looks for them
    if faces.faces:
        rgb = blur_faces(rgb, scan.crop_box, faces=faces)
    return encode_jpeg(rgb, 92), len(faces.faces)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fill(tmp: Path, data_dir: Path, rows: list[ExportRow], flt: ExportFilter,
          ) -> tuple[list[dict[str, str]], int, int]:
    """Write the image files into ``tmp``; the manifest records, skipped count, faces blurred."""
    (tmp / CROPS_DIR).mkdir()
    if flt.full_frames:
        (tmp / FRAMES_DIR).mkdir()
    records, skipped, faces = [], 0, 0
    for row in rows:
        crop = _crop_bytes(data_dir, row)
        if crop is None:
            log.warning("scan %d: its image was not kept or was purged; left out", row.scan.id)
            skipped += 1
            continue
        rel = f"{CROPS_DIR}/scan-{row.scan.id:06d}{crop[1]}"
        _write(tmp / rel, crop[0])
        frame_rel = ""
        if flt.full_frames:
            frame = _blurred_frame(data_dir, row)
            if frame is not None:
                frame_rel = f"{FRAMES_DIR}/scan-{row.scan.id:06d}.jpg"
                _write(tmp / frame_rel, frame[0])
                faces += frame[1]
        records.append(manifest_record(row, rel, frame_rel))
    return records, skipped, faces


def _replace(tmp: Path, out: Path, old: Path, protected: Mapping[str, Path],
             work_dir: Path) -> None:
    """Move the finished export into place (over an empty or, with --force, old folder,
    which waits at ``old`` meanwhile). The protected folders are checked again just
    before: nothing else is ever removed."""
    refuse_protected(out, protected, work_dir)
    replaced = out.exists()
    if replaced:
        os.replace(out, old)
    os.replace(tmp, out)
    if replaced:
        shutil.rmtree(old, ignore_errors=True)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export_dataset(store, out: Path, flt: ExportFilter, *, device_name: str, software_version: str,
                   exported_by: str, force: bool = False,
                   clock: Callable[[], dt.datetime] | None = None,
                   protected: Mapping[str, Path] | None = None) -> ExportResult:
    """Export the store's scans matching ``flt`` into the folder ``out``. ``protected``
    (label -> folder, e.g. the packs) is refused as ``out`` besides the store's data dir."""
    out = check_target(out, data_dir=Path(store.data_dir), force=force, protected=protected)
    guarded = {"data": Path(store.data_dir), **(protected or {})}
    work_dir = Path(store.data_dir) / WORK_DIR
    when = (clock or (lambda: dt.datetime.now(dt.timezone.utc)))()
    sweep_and_audit(store.data_dir, exported_by, beside=out)  # what killed exports left
    tmp, old = partial_path(out), old_path(out)
    with ExportWork(store.data_dir).hold(tmp, old):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        try:
            records, skipped, faces, prov = _fill_all(store, tmp, flt, device_name=device_name,
                                                      software_version=software_version,
                                                      exported_by=exported_by, when=when)
            _replace(tmp, out, old, guarded, work_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("exported %d scans to %s (%d left out without an image)", len(records), out, skipped)
    return ExportResult(out, len(records), skipped, faces, prov)


def _fill_all(store, tmp: Path, flt: ExportFilter, *, device_name: str, software_version: str,
              exported_by: str, when: dt.datetime) -> tuple[list[dict[str, str]], int, int, dict]:
    """Images, manifest.csv and provenance.json into ``tmp``."""
    with store.snapshot() as conn:
        rows = read_rows(conn, flt)
        if not rows:
            raise NothingToExportError(_nothing_message(conn, flt))
        records, skipped, faces = _fill(tmp, store.data_dir, rows, flt)
    if not records:
        raise NothingToExportError(f"none of the {len(rows)} matching scans has its image any "
                                   "more (keep_images off, or purged after retention_days)")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=manifest_header(records), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    _write(tmp / MANIFEST_NAME, text.getvalue().encode("utf-8"))
    prov = provenance(rows, records, flt, device_name=device_name,
                      software_version=software_version, exported_by=exported_by,
                      exported_at=when, skipped=skipped, faces_blurred=faces)
    _write(tmp / PROVENANCE_NAME, (_json(prov) + "\n").encode("utf-8"))
    return records, skipped, faces, prov


def _nothing_message(conn, flt: ExportFilter) -> str:
    total = conn.execute("SELECT COUNT(*) FROM region_scans").fetchone()[0]
    window = flt.describe()
    if total == 0:
        return "the store holds no scans yet; scan and review some in the dashboard first"
    if not flt.include_unreviewed:
        return (f"no reviewed scans{window} ({total} scans in the store; staff confirm a scan's "
                "grades with Save on its result page). Give --include-unreviewed to export "
                "unconfirmed model grades too")
    return f"no scans with grades{window} ({total} scans in the store)"


def _json(obj: dict) -> str:
    import json

    return json.dumps(obj, indent=2, sort_keys=True, default=_np_default)


def _np_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)
