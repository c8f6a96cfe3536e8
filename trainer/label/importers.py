"""``label import``: existing labels from a CSV or a COCO file, all or nothing.

CSV columns: ``rater,photo,x,y,w,h,erythema,excoriation,lichenification[,papulation]``.
``photo`` is the path relative to the photos folder (``file`` is accepted too); with a
``sha256`` column the photo is found by its digest instead, so a box list made against
another root still lands. ``rater`` may be left out when ``--rater`` names one. A blank
grade means "not graded yet" (a box-only list); raters finish it in the browser.

COCO: ``images`` (id, file_name, width, height) and ``annotations`` (image_id,
bbox [x, y, w, h], ``attributes`` with the grades, as CVAT exports them, and optionally a
``rater``). Every row is checked before anything is written; one bad row stops the import
and is named with its line (or annotation index).
"""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from device.core.vocab import parse_grade
from trainer.label.annotations import photo_from_row, write_answer
from trainer.label.db import transaction
from trainer.label.models import GRADED_SIGNS, AnnotationIn, BoxIn, LabelError, Photo
from trainer.label.users import check_name, ensure_rater

log = logging.getLogger(__name__)

MAX_ERRORS = 10


@dataclass(frozen=True)
class LabelRow:
    where: str  # "FILE line N" / "FILE annotation N"
    rater: str
    photo: Photo
    box: BoxIn


@dataclass(frozen=True)
class ImportResult:
    raters: list[str]
    photos: int
    boxes: int
    ungraded: int


class PhotoIndex:
    def __init__(self, db: sqlite3.Connection) -> None:
        rows = [photo_from_row(r) for r in db.execute("SELECT * FROM photos")]
        self.by_path = {p.relpath: p for p in rows}
        self.by_sha = {p.sha256: p for p in rows}

    def find(self, path: str, sha256: str, where: str) -> Photo:
        photo = self.by_sha.get(sha256.lower()) if sha256 else self.by_path.get(
            Path(path).as_posix())
        if photo is None:
            what = f"sha256 {sha256}" if sha256 else f"path {path!r}"
            raise LabelError(f"{where}: no photo with {what} in the project (paths are relative "
                             "to the photos folder; run `label init` again to add new photos)")
        return photo


def _grade(text: object, where: str, sign: str) -> int | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        return int(parse_grade(str(text).strip()))
    except ValueError as exc:
        raise LabelError(f"{where}: column {sign}: {exc}") from None


def _box(values: dict[str, object], where: str) -> BoxIn:
    fields: dict[str, object] = {}
    for key in ("x", "y", "w", "h"):
        try:
            fields[key] = round(float(str(values.get(key, "")).strip()))
        except ValueError:
            raise LabelError(f"{where}: column {key} must be a number, got "
                             f"{values.get(key)!r}") from None
    for sign in GRADED_SIGNS:
        fields[sign.value] = _grade(values.get(sign.value), where, sign.value)
    fields["note"] = str(values.get("note") or "").strip() or None
    try:
        return BoxIn(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise LabelError(f"{where}: {problems}") from None


def read_csv_labels(db: sqlite3.Connection, path: Path, rater: str | None) -> list[LabelRow]:
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = [(h or "").strip().lower() for h in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelError(f"cannot read labels CSV {path}: {exc}") from exc
    if not rows:
        raise LabelError(f"{path}: no label rows (expected a header "
                         "rater,photo,x,y,w,h,erythema,excoriation,lichenification)")
    need = {"x", "y", "w", "h"} | ({"rater"} if rater is None else set())
    missing = sorted(need - set(header))
    if missing or not ({"photo", "file", "sha256"} & set(header)):
        raise LabelError(f"{path}: header lacks {', '.join(missing) or 'photo'}; expected "
                         "rater,photo,x,y,w,h,erythema,excoriation,lichenification")
    index, out, errors = PhotoIndex(db), [], []
    for n, raw in enumerate(rows, start=2):
        values = {(k or "").strip().lower(): (v or "") for k, v in raw.items()}
        if None in raw:
            errors.append(f"{path} line {n}: more fields than the header has")
            continue
        where = f"{path} line {n}"
        try:
            out.append(_row(index, values, rater, where))
        except LabelError as exc:
            errors.append(str(exc))
    _raise_errors(errors)
    return out


def _row(index: PhotoIndex, values: dict[str, object], rater: str | None, where: str) -> LabelRow:
    name = str(values.get("rater") or rater or "").strip()
    if not name:
        raise LabelError(f"{where}: no rater: add a rater column (or attribute) or pass "
                         "--rater NAME")
    try:
        check_name(name)
    except LabelError as exc:
        raise LabelError(f"{where}: column rater: {exc}") from None
    photo = index.find(str(values.get("photo") or values.get("file") or ""),
                       str(values.get("sha256") or "").strip(), where)
    for key, have in (("width", photo.width), ("height", photo.height)):
        given = str(values.get(key) or "").strip()
        if given and given != str(have):
            raise LabelError(f"{where}: column {key} is {given} but {photo.relpath} is "
                             f"{photo.width}x{photo.height} (EXIF orientation applied)")
    box = _box(values, where)
    box.check_inside(photo.width, photo.height, where)
    return LabelRow(where, name, photo, box)


def read_coco_labels(db: sqlite3.Connection, path: Path, rater: str | None) -> list[LabelRow]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        images = {int(im["id"]): str(im["file_name"]) for im in doc["images"]}
        anns = list(doc["annotations"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            ValueError) as exc:
        raise LabelError(f"{path} is not a COCO file with images and annotations: {exc}") from exc
    index, out, errors = PhotoIndex(db), [], []
    for n, ann in enumerate(anns):
        where = f"{path} annotation {n} (id {ann.get('id', '?') if isinstance(ann, dict) else '?'})"
        try:
            if not isinstance(ann, dict) or ann.get("image_id") not in images:
                raise LabelError(f"{where}: image_id is missing or not in images")
            bbox = ann.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise LabelError(f"{where}: bbox must be [x, y, w, h]")
            attrs = ann.get("attributes") or {}
            values = dict(zip(("x", "y", "w", "h"), bbox, strict=True))
            values.update({k.lower(): v for k, v in attrs.items()})
            values.update(photo=images[ann["image_id"]], rater=attrs.get("rater") or rater)
            out.append(_row(index, values, None, where))
        except LabelError as exc:
            errors.append(str(exc))
    _raise_errors(errors)
    if not out:
        raise LabelError(f"{path}: no annotations to import")
    return out


def _raise_errors(errors: list[str]) -> None:
    if errors:
        more = f"\n... and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        raise LabelError(f"nothing imported: {len(errors)} bad row(s):\n"
                         + "\n".join(errors[:MAX_ERRORS]) + more)


def write_labels(db: sqlite3.Connection, rows: list[LabelRow]) -> ImportResult:
    """One transaction: each (rater, photo) in the file replaces that rater's answer."""
    grouped: dict[tuple[str, int], list[LabelRow]] = defaultdict(list)
    for row in rows:
        grouped[(row.rater, row.photo.id)].append(row)
    with transaction(db):
        for (rater, _), group in sorted(grouped.items()):
            ensure_rater(db, rater)
            answer = AnnotationIn(boxes=[r.box for r in group])
            write_answer(db, group[0].photo, rater, answer, group[0].where)
    ungraded = sum(1 for r in rows if any(v is None for v in list(r.box.grades().values())[:3]))
    result = ImportResult(raters=sorted({r.rater for r in rows}),
                          photos=len({r.photo.id for r in rows}), boxes=len(rows),
                          ungraded=ungraded)
    log.info("imported %d boxes on %d photos from %s", result.boxes, result.photos,
             ", ".join(result.raters))
    return result
