"""``evaluate-photos``: run the scan pipeline on every photo in a folder and say what
the device would have done: quality verdict, abstention, crop and grades per photo,
then the totals, and (with lesion boxes) how often the crop lands on a lesion.

Lesion boxes come from a CSV with the columns ``file,sha256,width,height,x,y,w,h,note``
(the labelling studio's export; several rows per photo for several lesions). A photo
is matched by sha256, else by its path relative to the folder, else by file name;
boxes are scaled when the photo's size differs from ``width``/``height``.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from device.core.imageio import PHOTO_SUFFIXES
from device.grading.abstain import AbstainSpace
from device.scan.pipeline import ScanError, Scanner, load_image_file
from device.vision.crop import Box, iou

log = logging.getLogger(__name__)

#: A crop is on a lesion when its IoU with a lesion box reaches this, or its centre is inside one.
HIT_IOU = 0.3
BOX_COLUMNS = ("file", "sha256", "width", "height", "x", "y", "w", "h")
#: ``refused_by`` of a photo the quality check refused before the models ran.
QUALITY_CHECK = "quality"
SPACE_WORDS = {AbstainSpace.SCENE: "scene space (the whole frame)",
               AbstainSpace.FEATURE: "feature space", AbstainSpace.IMAGE: "image space",
               AbstainSpace.BOTH: "feature and image spaces"}


class BoxesError(ValueError):
    """The boxes CSV cannot be read; the message names the file, row and column."""


@dataclass(frozen=True)
class LesionBox:
    file: str
    sha256: str
    size: tuple[int, int]  # width, height the box was drawn on
    box: Box


class PhotoVerdict(str, Enum):
    """What the device did with a photo."""

    GRADED = "graded"
    ABSTAINED = "abstained"  # the models abstained: staff grade
    REFUSED = "refused"  # the quality check refused it
    ERROR = "error"  # unreadable or bad input


@dataclass
class PhotoResult:
    path: Path
    rel: str
    verdict: PhotoVerdict
    reasons: list[str] = field(default_factory=list)
    score: float | None = None
    crop: dict | None = None
    grades: dict[str, int] = field(default_factory=dict)
    ms: float = 0.0
    boxes: list[Box] = field(default_factory=list)
    on_lesion: bool | None = None
    best_iou: float | None = None
    image_size: tuple[int, int] = (0, 0)  # height, width
    #: Which abstention space(s) the crop was past (None: within both, or not scored).
    space: AbstainSpace | None = None
    #: The models ran (False: refused by the quality check before them, or an error).
    scored: bool = False
    #: The crop's spaces' verdict alone (feature, image, both; the scene aside).
    crop_space: AbstainSpace | None = None
    #: The scene space's distance/threshold (None: the pack has no scene space, or not scored).
    scene_score: float | None = None

    @property
    def refused_by(self) -> str | None:
        """What kept the photo from being graded: "quality" (the check before the
        models), an AbstainSpace value, or None when graded."""
        if self.verdict is PhotoVerdict.GRADED:
            return None
        if self.verdict is PhotoVerdict.REFUSED and not self.scored:
            return QUALITY_CHECK
        return None if self.space is None else self.space.value

    def line(self) -> str:
        parts = [f"{self.rel}: {self.verdict.value}"]
        if self.space is not None:
            parts.append(f"past the {SPACE_WORDS[self.space]}")
        if self.score is not None:
            parts.append(f"abstention score {self.score:.2f}")
        if self.crop:
            parts.append(f"crop {self.crop['mode']} {self.crop['box']}"
                         + (f" (unsure, {self.crop.get('doubt') or 'fell back'}: guide square)"
                            if self.crop.get("fallback") else ""))
        if self.grades:
            parts.append("grades " + " ".join(f"{k}={v}" for k, v in self.grades.items()))
        if self.on_lesion is not None:
            parts.append("on a lesion" if self.on_lesion else "OFF the lesion boxes")
        if self.reasons:
            parts.append("; ".join(self.reasons))
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {"file": self.rel, "verdict": self.verdict.value, "reasons": self.reasons,
                "abstention_score": self.score, "crop": self.crop, "grades": self.grades,
                "refused_by": self.refused_by,
                "space": None if self.space is None else self.space.value,
                "crop_space": None if self.crop_space is None else self.crop_space.value,
                "scene_score": None if self.scene_score is None else round(self.scene_score, 4),
                "ms": round(self.ms, 2), "lesion_boxes": [list(b) for b in self.boxes],
                "on_lesion": self.on_lesion,
                "best_iou": None if self.best_iou is None else round(self.best_iou, 4)}


def find_photos(root: Path) -> list[Path]:
    """Image files under ``root`` (recursively), in a stable order."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def read_boxes(path: Path) -> list[LesionBox]:
    """Lesion boxes from the labelling studio's CSV (see module doc)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            header = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BoxesError(f"{path}: cannot read the boxes CSV ({exc})") from exc
    missing = [c for c in BOX_COLUMNS if rows and c not in header]
    if missing:
        raise BoxesError(f"{path}: missing column(s) {', '.join(missing)}; expected "
                         f"{','.join(BOX_COLUMNS)},note")
    out = []
    for n, row in enumerate(rows, start=2):
        try:
            x, y, w, h, width, height = (int(round(float(row[c])))
                                         for c in ("x", "y", "w", "h", "width", "height"))
        except (TypeError, ValueError) as exc:
            raise BoxesError(f"{path}: line {n}: x, y, w, h, width and height must be numbers "
                             f"({exc})") from exc
        if w <= 0 or h <= 0:
            raise BoxesError(f"{path}: line {n}: box {w}x{h} has no area")
        out.append(LesionBox(row["file"], (row["sha256"] or "").lower(), (width, height),
                             (x, y, w, h)))
    return out


def boxes_for(photo: Path, rel: str, digest: str, size_hw: tuple[int, int],
              boxes: Iterable[LesionBox]) -> list[Box]:
    """This photo's lesion boxes, scaled to its pixels."""
    name = photo.name
    found = [b for b in boxes if b.sha256 == digest] or \
        [b for b in boxes if b.file == rel or b.file.endswith("/" + rel)] or \
        [b for b in boxes if Path(b.file).name == name]
    h, w = size_hw
    out = []
    for b in found:
        sx, sy = w / max(1, b.size[0]), h / max(1, b.size[1])
        x, y, bw, bh = b.box
        out.append((round(x * sx), round(y * sy), round(bw * sx), round(bh * sy)))
    return out


def on_lesion(crop: Box, boxes: list[Box]) -> bool:
    cx, cy = crop[0] + crop[2] / 2, crop[1] + crop[3] / 2
    return any(iou(crop, b) >= HIT_IOU or (b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3])
               for b in boxes)


def evaluate_photo(scanner: Scanner, photo: Path, root: Path,
                   boxes: list[LesionBox] | None) -> tuple[PhotoResult, object]:
    """One photo through the pipeline; returns the result and the image (None on error)."""
    rel = photo.name if root.is_file() else str(photo.relative_to(root))
    start = time.perf_counter()
    try:
        image = load_image_file(photo)
        scan = scanner.scan(image)
    except ScanError as exc:
        return PhotoResult(photo, rel, PhotoVerdict.ERROR, [str(exc)], ms=(time.perf_counter() - start) * 1e3), None
    ms = (time.perf_counter() - start) * 1e3
    if not scan.quality.ok:
        verdict = PhotoVerdict.REFUSED
    elif scan.abstained:
        verdict = PhotoVerdict.ABSTAINED
    else:
        verdict = PhotoVerdict.GRADED
    result = PhotoResult(photo, rel, verdict, list(scan.quality.reasons),
                         scan.abstention.score if scan.abstention else None,
                         scan.crop.to_dict() if scan.crop else None,
                         {s.value: int(r.grade) for s, r in scan.signs.items()}, ms,
                         image_size=image.shape[:2],
                         space=scan.abstention.space if scan.abstention else None,
                         scored=scan.abstention is not None,
                         crop_space=scan.abstention.crop_space if scan.abstention else None,
                         scene_score=scan.abstention.scene_score if scan.abstention else None)
    if boxes is not None:
        digest = hashlib.sha256(photo.read_bytes()).hexdigest()
        result.boxes = boxes_for(photo, rel, digest, image.shape[:2], boxes)
        if result.boxes and scan.crop is not None:
            result.on_lesion = on_lesion(scan.crop.box, result.boxes)
            result.best_iou = max(iou(scan.crop.box, b) for b in result.boxes)
    return result, image


def totals(results: list[PhotoResult]) -> dict:
    n = len(results)
    count = {v: sum(r.verdict is v for r in results) for v in PhotoVerdict}
    labelled = [r for r in results if r.on_lesion is not None]
    hits = sum(bool(r.on_lesion) for r in labelled)
    graded, abstained = count[PhotoVerdict.GRADED], count[PhotoVerdict.ABSTAINED]
    by = [r.refused_by for r in results if r.verdict in (PhotoVerdict.ABSTAINED, PhotoVerdict.REFUSED)]
    return {
        # What kept each photo from being graded: the quality check before the models, or
        # the abstention space(s) past their threshold (an abstention on a photo with
        # little skin is reported as a "not skin" refusal, and counted by its space here).
        "not_graded_by": {k: by.count(k) for k in (QUALITY_CHECK, *(s.value for s in AbstainSpace))},
        # Of the photos the scene space refused, those the crop's spaces accepted.
        "scene_alone": sum(r.space is AbstainSpace.SCENE and r.crop_space is None
                           and r.refused_by is not None for r in results),
        "refused_not_skin_after_models": sum(r.verdict is PhotoVerdict.REFUSED and r.scored
                                             for r in results),
        "photos": n, "accepted": graded, "abstained": abstained,
        "refused_by_quality": count[PhotoVerdict.REFUSED],
        "unreadable_or_bad_input": count[PhotoVerdict.ERROR],
        "refused_or_abstained_share": (n - graded) / n if n else 0.0,
        "abstained_share": abstained / n if n else 0.0,
        "ms_per_photo": sum(r.ms for r in results) / n if n else 0.0,
        "crops_checked_against_boxes": len(labelled),
        "crops_on_lesion": hits,
        "crops_on_lesion_share": hits / len(labelled) if labelled else None,
        "crops_iou_ge_0.5_share": (sum((r.best_iou or 0) >= 0.5 for r in labelled) / len(labelled)
                                   if labelled else None),
    }


def format_totals(t: dict) -> str:
    lines = [f"{t['photos']} photos: {t['accepted']} graded, {t['refused_by_quality']} refused "
             f"by quality, {t['abstained']} abstained, {t['unreadable_or_bad_input']} unreadable "
             f"or bad input ({100 * t['refused_or_abstained_share']:.1f} % not graded); "
             f"{t['ms_per_photo']:.1f} ms per photo (reading the file included)"]
    by = t["not_graded_by"]
    lines.append(f"not graded by: the quality check {by[QUALITY_CHECK]}, the scene space "
                 f"{by['scene']} ({t['scene_alone']} of them within the crop's spaces), the "
                 f"feature space {by['feature']}, the image space {by['image']}, both crop spaces "
                 f"{by['both']} "
                 f"({t['refused_not_skin_after_models']} of these refused as not skin after "
                 "the models abstained)")
    if t["crops_checked_against_boxes"]:
        lines.append(f"crop on a labelled lesion (IoU >= {HIT_IOU} or centre inside): "
                     f"{t['crops_on_lesion']} of {t['crops_checked_against_boxes']} "
                     f"({100 * t['crops_on_lesion_share']:.1f} %); crop IoU >= 0.5: "
                     f"{100 * t['crops_iou_ge_0.5_share']:.1f} %")
    return "\n".join(lines)
