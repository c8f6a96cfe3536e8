"""Reviewed scans as a training data set: graded crops, ``manifest.csv``, ``provenance.json``.

The export is the device's half of the data loop (DESIGN.md): every scan whose
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
  export or service start (device.export_work, counted in the audit log).
- Never over patient data: an ``out`` that is, holds or sits inside the data folder
  (or another protected folder, e.g. the packs) is refused before anything is written,
  whatever ``force`` says; symlinks are resolved first. The one exception is the
  dashboard's own work folder (``DATA/.exports/<name>``), which holds only exports.
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

from device.errors import Conflict, InvalidInput, NotFound
from device.export_rows import (
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
from device.export_work import WORK_DIR, ExportWork, old_path, partial_path, sweep_and_audit
from device.imageio import encode_jpeg, encode_png
from device.store.db import DB_NAME

log = logging.getLogger(__name__)


class ExportError(InvalidInput):
    """The export cannot be made; the message says why and what to do."""


class OutputNotEmptyError(ExportError, Conflict):
    """The output folder holds files already (give --force to replace them)."""


class ProtectedOutputError(ExportError):
    """The output is, holds or sits inside a folder of patient data or model packs."""


class NothingToExportError(ExportError, NotFound):
    """No scan matches (e.g. none reviewed yet)."""


@dataclass(frozen=True)
class ExportResult:
    out: Path
    rows: int
    skipped: int
    faces_blurred: int
    provenance: dict


#: Kernel file systems that hold no files of their own: never an export target.
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _check_out(out: Path, force: bool, protected: Mapping[str, Path], work_dir: Path) -> None:
    _refuse_protected(out, protected, work_dir)
    real = out.resolve()
    system = next((f for f in SYSTEM_FOLDERS if real.is_relative_to(f)), None)
    if system is not None:
        raise ExportError(f"{out} is in {system}, the kernel's own file system, not a disk; "
                          "choose a folder on a disk")
    longest = name_max(out.parent) - len(partial_path(Path("x")).name) + 1
    if len(out.name.encode()) > longest:
        raise ExportError(f"the folder name {out.name[:40]}... is too long for an export: "
                          f"{len(out.name.encode())} bytes, at most {longest}")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; give a folder for the export")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputNotEmptyError(f"{out} is not empty; choose a new folder, or give --force to "
                             "replace what is there")
    store_file = _store_inside(out) if out.is_dir() else None
    if store_file is not None:  # another device's data, a backup copy: never replaced
        raise ProtectedOutputError(
            f"{out} holds a scan store ({store_file}); an export never writes over one (with or "
            "without --force): choose a folder outside it")


def _store_inside(folder: Path, depth: int = 2) -> Path | None:
    """A scan store database in ``folder`` or up to ``depth`` folder levels below it."""
    level = [folder]
    for _ in range(depth + 1):
        for path in level:
            if (path / DB_NAME).is_file():
                return path / DB_NAME
        level = [p for path in level for p in _subfolders(path)]
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def check_target(out: Path, *, data_dir: Path, force: bool = False,
                 protected: Mapping[str, Path] | None = None) -> Path:
    """Refuse ``out`` (ExportError) before anything is opened or written: a folder of
    patient data or packs, a system folder, a name too long, a non-empty folder without
    ``force``. Returns ``out`` as an absolute path. ``export_dataset`` checks again."""
    out = Path(out).expanduser().absolute()
    guarded = {"data": Path(data_dir), **(protected or {})}
    _check_out(out, force, guarded, Path(data_dir) / WORK_DIR)
    return out


def name_max(folder: Path) -> int:
    """The longest file name the disk holding ``folder`` (or its nearest parent) allows."""
    for candidate in (folder, *folder.parents):
        try:
            return os.pathconf(candidate, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return 255


def _refuse_protected(out: Path, protected: Mapping[str, Path], work_dir: Path) -> None:
    """Raise ProtectedOutputError when ``out`` (symlinks resolved) is, holds or is inside
    one of ``protected`` (label -> folder); strictly inside ``work_dir`` is allowed."""
    real = out.resolve()
    work = work_dir.expanduser().resolve()
    if real != work and real.is_relative_to(work):
        return
    for label, folder in protected.items():
        guarded = folder.expanduser().resolve()
        if real == guarded:
            how = "is"
        elif guarded.is_relative_to(real):
            how = "holds"
        elif real.is_relative_to(guarded):
            how = "is inside"
        else:
            continue
        raise ProtectedOutputError(
            f"{out} {how} the {label} folder {guarded}; an export never writes over it (with or "
            "without --force): choose a folder outside it")


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
    from device.imageio import ImageError, read_image

    try:
        return read_image(path)
    except ImageError as exc:
        log.warning("%s: %s; left out", path, exc)
        return None


def _blurred_frame(data_dir: Path, row: ExportRow) -> tuple[bytes, int] | None:
    """The full frame as JPEG with faces blurred outside the crop box, and the face count."""
    from device.faces import blur_faces, find_faces

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
    _refuse_protected(out, protected, work_dir)
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
    out = Path(out).expanduser().absolute()
    guarded = {"data": Path(store.data_dir), **(protected or {})}
    work_dir = Path(store.data_dir) / WORK_DIR
    _check_out(out, force, guarded, work_dir)
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
