"""Readers for the two on-disk data set layouts (docs/ARCHITECTURE.md, "Data on disk").

* folders:  ``ROOT/<sign>/<grade>/*.jpg|png`` -- the paper's layout. The grade folder is
  ``0``..``3`` or a grade name (none, mild, moderate, severe). Each file is one sample graded
  for that one sign; folder-layout data carries no patient ids.
* manifest: ``ROOT/manifest.csv`` with columns
  ``path,patient_id,region,erythema,excoriation,lichenification[,box_x,box_y,box_w,box_h]``;
  a grade may be blank where that sign was not graded. Optional per-rater columns (the
  labelling studio's export, the generator's ``--raters``): ``raters`` (names, ``;``
  between them) and ``<sign>_by_rater`` (each rater's grade in the same order, blank where
  that rater left the sign ungraded). A manifest without them reads as before.

Bad pieces (a missing sign folder, an unknown grade folder, an unreadable or non-image file, a
bad manifest row) are skipped and reported by path in ``LoadReport.skipped``; the rest still
load. ``DataError`` is raised only when the data set is unusable as a whole.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from device.core.imageio import PHOTO_SUFFIXES
from device.core.vocab import MODEL_SIGNS, Region, Sign, parse_grade, parse_region, parse_sign

log = logging.getLogger(__name__)

FOLDERS = "folders"
MANIFEST = "manifest"
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("path", "patient_id", "region") + tuple(s.value for s in MODEL_SIGNS)
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")
RATERS_COLUMN = "raters"
RATER_SEP = ";"


def rater_column(sign: Sign) -> str:
    """The manifest column holding each rater's grade of ``sign``."""
    return f"{sign.value}_by_rater"


def rater_cells(grades: Mapping[Sign, Mapping[str, int]], raters: list[str]) -> dict[str, str]:
    """The per-rater manifest cells of one lesion: ``raters`` and ``<sign>_by_rater``."""
    cells = {RATERS_COLUMN: RATER_SEP.join(raters)}
    for sign in MODEL_SIGNS:
        by = grades.get(sign, {})
        cells[rater_column(sign)] = RATER_SEP.join(
            "" if by.get(r) is None else str(int(by[r])) for r in raters)
    return cells


class DataError(Exception):
    """The data set cannot be used at all (no such folder, bad manifest header, no images)."""


@dataclass(frozen=True)
class Sample:
    path: Path  # absolute path of the image
    grades: Mapping[Sign, int] = field(hash=False)  # only the signs graded for this image
    patient_id: str | None = None
    region: Region | None = None
    box: tuple[int, int, int, int] | None = None  # lesion box x, y, w, h (full photos only)
    #: each rater's grade, per sign (empty: the manifest has no per-rater columns)
    rater_grades: Mapping[Sign, Mapping[str, int]] = field(default_factory=dict, hash=False,
                                                           compare=False)


@dataclass
class LoadReport:
    root: Path
    layout: str  # FOLDERS or MANIFEST (or "mixed": several roots, see trainer.roots)
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason)
    roots: tuple[Path, ...] = ()  # every root when several were read together

    @property
    def key_root(self) -> Path | tuple[Path, ...]:
        """What split keys are relative to: the root, or all roots (trainer.split)."""
        return self.roots if len(self.roots) > 1 else self.root

    def summary(self, max_listed: int = 20) -> str:
        """Counts per sign x grade, then every skipped path with its reason (up to max_listed)."""
        where = f"{len(self.roots)} data roots" if len(self.roots) > 1 else str(self.root)
        lines = [f"{len(self.samples)} images loaded from {where} ({self.layout} layout)"]
        for sign in MODEL_SIGNS:
            counts = Counter(s.grades[sign] for s in self.samples if sign in s.grades)
            if counts:
                per = ", ".join(f"grade {g}: {counts.get(g, 0)}" for g in range(4))
                lines.append(f"  {sign.value}: {per}")
        if self.skipped:
            lines.append(f"{len(self.skipped)} skipped:")
            for path, reason in self.skipped[:max_listed]:
                lines.append(f"  {path}: {reason}")
            if len(self.skipped) > max_listed:
                lines.append(f"  ... and {len(self.skipped) - max_listed} more")
        else:
            lines.append("nothing skipped")
        return "\n".join(lines)


def samples_for_sign(samples: Iterable[Sample], sign: Sign) -> list[Sample]:
    """The samples graded for ``sign``, in their given order."""
    return [s for s in samples if sign in s.grades]


def check_image(path: Path) -> str | None:
    """None if ``path`` decodes as a JPEG or PNG image, else the reason it does not."""
    from device.core.imageio import ImageError, read_image

    try:  # decoded at 1/8 size: enough to find a truncated or corrupt file, and fast
        read_image(path, what="the file", formats=("jpeg", "png"), reduce=8)
    except ImageError as exc:
        return str(exc).removeprefix("the file: ")
    return None


def load_dataset(root: Path, *, check_images: bool = True) -> LoadReport:
    """Read a data set in either layout (manifest.csv present -> manifest layout)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (or is not a folder)")
    root = root.resolve()
    if (root / MANIFEST_NAME).is_file():
        report = _load_manifest(root, check_images)
    else:
        report = _load_folders(root, check_images)
    if not report.samples:
        reasons = "; ".join(f"{p}: {r}" for p, r in report.skipped[:3])
        raise DataError(
            f"no usable images in {root} ({report.layout} layout)"
            + (f"; {len(report.skipped)} skipped, e.g. {reasons}" if reasons else "")
        )
    for path, reason in report.skipped:
        log.warning("skipped %s: %s", path, reason)
    return report


def _load_folders(root: Path, check_images: bool) -> LoadReport:
    report = LoadReport(root=root, layout=FOLDERS, samples=[])
    sign_dirs: dict[Sign, Path] = {}
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        try:
            sign = parse_sign(child.name, model_only=True)
        except ValueError as exc:
            report.skipped.append((child, f"not a sign folder ({exc})"))
            continue
        sign_dirs[sign] = child
    if not sign_dirs:
        names = ", ".join(s.value for s in MODEL_SIGNS)
        raise DataError(
            f"{root} has neither {MANIFEST_NAME} nor any sign folder ({names}); "
            f"expected ROOT/<sign>/<grade>/*.jpg or ROOT/{MANIFEST_NAME}"
        )
    for sign in MODEL_SIGNS:
        if sign not in sign_dirs:
            report.skipped.append((root / sign.value, "missing folder: no images for this sign"))
            continue
        for grade_dir in sorted(sign_dirs[sign].iterdir()):
            if not grade_dir.is_dir():
                report.skipped.append((grade_dir, "not a grade folder (files belong in 0..3/)"))
                continue
            try:
                grade = int(parse_grade(grade_dir.name))
            except ValueError as exc:
                report.skipped.append((grade_dir, f"unknown grade folder ({exc})"))
                continue
            for path in sorted(grade_dir.iterdir()):
                reason = _file_problem(path, check_images)
                if reason:
                    report.skipped.append((path, reason))
                else:
                    report.samples.append(Sample(path=path, grades={sign: grade}))
    return report


def _file_problem(path: Path, check_images: bool) -> str | None:
    if path.is_dir():
        return "unexpected folder inside a grade folder"
    if path.suffix.lower() not in PHOTO_SUFFIXES:
        return f"not an image file (suffix {path.suffix or 'none'!r}; expected .jpg or .png)"
    if not path.is_file():
        return "image file does not exist"
    return check_image(path) if check_images else None


def _load_manifest(root: Path, check_images: bool) -> LoadReport:
    report = LoadReport(root=root, layout=MANIFEST, samples=[])
    manifest = root / MANIFEST_NAME
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {manifest}: {exc}") from exc
    if not rows:
        raise DataError(f"{manifest} is empty; expected a header: {','.join(MANIFEST_COLUMNS)}")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{manifest}: header lacks column(s) {', '.join(missing)}; "
            f"expected {','.join(MANIFEST_COLUMNS)}[,{','.join(BOX_COLUMNS)}]"
        )
    has_box = [c in header for c in BOX_COLUMNS]
    if any(has_box) and not all(has_box):
        raise DataError(f"{manifest}: give all four box columns {','.join(BOX_COLUMNS)} or none")
    col = {name: header.index(name) for name in header}
    seen: set[Path] = set()
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{MANIFEST_NAME} line {line_no}"
        if len(row) != len(header):
            report.skipped.append(
                (manifest, f"{where}: {len(row)} fields, header has {len(header)}"))
            continue
        try:
            sample = _parse_row(root, row, col, all(has_box))
        except ValueError as exc:
            report.skipped.append((manifest, f"{where}: {exc}"))
            continue
        if sample.path in seen:
            report.skipped.append((sample.path, f"{where}: listed twice"))
            continue
        seen.add(sample.path)
        reason = _file_problem(sample.path, check_images)
        if reason:
            report.skipped.append((sample.path, f"{where}: {reason}"))
        else:
            report.samples.append(sample)
    return report


def _parse_row(root: Path, row: list[str], col: dict[str, int], has_box: bool) -> Sample:
    def cell(name: str) -> str:
        return row[col[name]].strip()

    if not cell("path"):
        raise ValueError("empty path")
    path = Path(cell("path"))
    path = path if path.is_absolute() else root / path
    grades: dict[Sign, int] = {}
    for sign in MODEL_SIGNS:
        text = cell(sign.value)
        if text:
            try:
                grades[sign] = int(parse_grade(text))
            except ValueError as exc:
                raise ValueError(f"column {sign.value}: {exc}") from None
    if not grades:
        raise ValueError("no sign graded (erythema, excoriation and lichenification all blank)")
    region = None
    if cell("region"):
        try:
            region = parse_region(cell("region"))
        except ValueError as exc:
            raise ValueError(f"column region: {exc}") from None
    box = None
    if has_box:
        texts = [cell(c) for c in BOX_COLUMNS]
        if any(texts):
            try:
                box = tuple(int(float(t)) for t in texts)
            except ValueError:
                raise ValueError(f"box columns must be whole numbers, got {texts}") from None
            if box[2] <= 0 or box[3] <= 0 or box[0] < 0 or box[1] < 0:
                raise ValueError(f"box {box} must have x, y >= 0 and positive width and height")
    return Sample(path=path, grades=grades, patient_id=cell("patient_id") or None,
                  region=region, box=box,  # type: ignore[arg-type]
                  rater_grades=_parse_raters(row, col))


def _parse_raters(row: list[str], col: dict[str, int]) -> dict[Sign, dict[str, int]]:
    """Each rater's grades from the optional per-rater columns ({} where absent)."""
    if RATERS_COLUMN not in col or not row[col[RATERS_COLUMN]].strip():
        return {}
    raters = [r.strip() for r in row[col[RATERS_COLUMN]].split(RATER_SEP)]
    if any(not r for r in raters) or len(set(raters)) != len(raters):
        raise ValueError(f"column {RATERS_COLUMN}: rater names must be non-empty and "
                         f"distinct, got {row[col[RATERS_COLUMN]]!r}")
    out: dict[Sign, dict[str, int]] = {}
    for sign in MODEL_SIGNS:
        name = rater_column(sign)
        if name not in col or not row[col[name]].strip():
            continue
        cells = row[col[name]].split(RATER_SEP)
        if len(cells) != len(raters):
            raise ValueError(f"column {name}: {len(cells)} grades for {len(raters)} raters "
                             f"({RATERS_COLUMN} {row[col[RATERS_COLUMN]]!r})")
        by: dict[str, int] = {}
        for rater, text in zip(raters, cells, strict=True):
            if text.strip():
                try:
                    by[rater] = int(parse_grade(text.strip()))
                except ValueError as exc:
                    raise ValueError(f"column {name}, rater {rater}: {exc}") from None
        if by:
            out[sign] = by
    return out
