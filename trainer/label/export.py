"""``label export``: consensus lesions as square crops + ``manifest.csv`` (the trainer's
manifest layout), a box list (CSV, no images), or COCO.

Beside the consensus the manifest keeps each rater's grades (``raters`` and
``<sign>_by_rater``, trainer.data), so the trainer can learn from the raters' spread and
measure a model against their own disagreement (trainer.ceiling).

Deterministic: photos in path order, lesions top-left first, crops named from the photo and
the lesion's index, JPEG at a fixed quality, the manifest written last and atomically. A
lesion with no consensus grade for any model sign (ungraded, or all awaiting adjudication)
is left out and counted.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from device.core.atomic import atomic_write_text
from device.core.imageio import encode_jpeg
from device.core.vocab import MODEL_SIGNS
from trainer.data import RATERS_COLUMN, rater_cells, rater_column
from trainer.label.consensus import ConsensusBox, all_consensus
from trainer.label.db import photos_dir
from trainer.label.models import GRADED_SIGNS, LabelError
from trainer.label.photos import read_rgb

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
CROPS = "crops"
JPEG_QUALITY = 95
MANIFEST_COLUMNS = (
    "path", "patient_id", "region", *(s.value for s in MODEL_SIGNS), "papulation",
    "n_raters", "agreement", "adjudicated", "source_photo", "source_sha256",
    "src_x", "src_y", "src_w", "src_h", "crop_x", "crop_y", "crop_side",
    RATERS_COLUMN, *(rater_column(s) for s in MODEL_SIGNS))
BOX_LIST_COLUMNS = ("file", "sha256", "width", "height", "x", "y", "w", "h", "note")


@dataclass(frozen=True)
class ExportResult:
    crops: int
    photos: int
    left_out: int  # lesions without any consensus grade


def square_crop(box: tuple[int, int, int, int], context: float, width: int,
                height: int) -> tuple[int, int, int]:
    """(x, y, side) of the square around ``box`` with ``context`` margin (share of the box's
    longer side on each side), moved (never cut) to lie inside the photo; a square larger
    than the photo's shorter side shrinks to it."""
    x, y, w, h = box
    side = min(round(max(w, h) * (1 + 2 * context)), width, height)
    cx, cy = x + w / 2, y + h / 2
    x0 = min(max(round(cx - side / 2), 0), width - side)
    y0 = min(max(round(cy - side / 2), 0), height - side)
    return x0, y0, side


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise LabelError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        ours = {p.name for p in out.iterdir()} <= {MANIFEST, CROPS}
        if not (force and ours):
            raise LabelError(f"{out} is not empty; give a new folder"
                             + ("" if ours else " (it holds files an export did not write)")
                             + ("" if force else ", or --force to replace an earlier export"))
        shutil.rmtree(out / CROPS, ignore_errors=True)
        (out / MANIFEST).unlink(missing_ok=True)
    (out / CROPS).mkdir(parents=True, exist_ok=True)


def _cell(value: int | float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _rater_row(c: ConsensusBox) -> list[str]:
    """The lesion's raters and each one's grades, in MANIFEST_COLUMNS' order."""
    raters = sorted({b.rater for b in c.lesion.boxes})
    grades = {s: {b.rater: g for b in c.lesion.boxes if (g := b.grades.get(s)) is not None}
              for s in MODEL_SIGNS}
    cells = rater_cells(grades, raters)
    return [cells[RATERS_COLUMN], *(cells[rater_column(s)] for s in MODEL_SIGNS)]


def export_crops(db: sqlite3.Connection, out: Path, *, context: float = 0.0, size: int = 0,
                 force: bool = False) -> ExportResult:
    if not 0 <= context <= 2:
        raise LabelError(f"--context must lie between 0 and 2 (a share of the box), got {context}")
    out = Path(out)
    prepare_out(out, force)
    root = photos_dir(db)
    rows, left_out, photos = [], 0, set()
    by_photo: dict[int, list[ConsensusBox]] = {}
    for c in all_consensus(db):
        by_photo.setdefault(c.photo.id, []).append(c)
    for group in by_photo.values():
        photo = group[0].photo
        keep = [c for c in group if any(c.grades[s] is not None for s in MODEL_SIGNS)]
        left_out += len(group) - len(keep)
        if not keep:
            continue
        rgb = read_rgb(root / photo.relpath)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(photo.relpath).stem)[:60]
        for k, c in enumerate(keep, start=1):
            x0, y0, side = square_crop(c.box, context, photo.width, photo.height)
            crop = rgb[y0:y0 + side, x0:x0 + side]
            name = f"{CROPS}/{stem}-{photo.sha256[:8]}-{k:02d}.jpg"
            (out / name).write_bytes(encode_jpeg(crop, JPEG_QUALITY, max_side=size or None))
            rows.append([name, photo.patient_id, photo.region.value if photo.region else "",
                         *(_cell(c.grades[s]) for s in GRADED_SIGNS), str(c.n_raters),
                         _cell(c.agreement()), ",".join(s.value for s in c.adjudicated),
                         photo.relpath, photo.sha256, *map(str, c.box), str(x0), str(y0),
                         str(side), *_rater_row(c)])
        photos.add(photo.id)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows)
    atomic_write_text(out / MANIFEST, buf.getvalue())
    log.info("exported %d crops from %d photos to %s", len(rows), len(photos), out)
    return ExportResult(crops=len(rows), photos=len(photos), left_out=left_out)


def _relative(photo_path: Path, relative_to: Path | None) -> str:
    if relative_to is None:
        return photo_path.as_posix()
    try:
        return photo_path.resolve().relative_to(relative_to.resolve()).as_posix()
    except ValueError:
        raise LabelError(f"{photo_path} is not under --relative-to {relative_to}") from None


def export_box_list(db: sqlite3.Connection, out: Path, *,
                    relative_to: Path | None = None) -> int:
    """One row per consensus box: file names, sha256 and coordinates only, no images."""
    root = photos_dir(db)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(BOX_LIST_COLUMNS)
    n = 0
    for c in all_consensus(db):
        notes = sorted({b.note for b in c.lesion.boxes if b.note})
        path = root / c.photo.relpath if relative_to else Path(c.photo.relpath)
        writer.writerow([_relative(path, relative_to), c.photo.sha256, c.photo.width,
                         c.photo.height, *c.box, "; ".join(notes)])
        n += 1
    atomic_write_text(Path(out), buf.getvalue())
    return n


def export_coco(db: sqlite3.Connection, out: Path) -> int:
    """Consensus boxes as COCO, with the grades as CVAT-style ``attributes``."""
    images, anns = {}, []
    for c in all_consensus(db):
        p = c.photo
        images.setdefault(p.id, {"id": p.id, "file_name": p.relpath, "width": p.width,
                                 "height": p.height})
        attrs: dict[str, int | str] = {s.value: g for s, g in c.grades.items() if g is not None}
        attrs["n_raters"] = c.n_raters
        anns.append({"id": len(anns) + 1, "image_id": p.id, "category_id": 1,
                     "bbox": list(c.box), "area": c.box[2] * c.box[3], "iscrowd": 0,
                     "attributes": attrs})
    doc = {"info": {"description": "atopiscan labelling studio: consensus lesion boxes"},
           "images": list(images.values()), "annotations": anns,
           "categories": [{"id": 1, "name": "lesion", "supercategory": ""}]}
    atomic_write_text(Path(out), json.dumps(doc, indent=1) + "\n")
    return len(anns)


