"""Consensus grades per lesion, and the adjudication queue.

For each lesion (boxes matched across raters by IoU) and sign, the consensus grade is the
median of the raters' grades rounded half up to a whole grade (1.5 -> 2). When the raters'
grades of a sign span 2 or more, the sign goes to the adjudication queue and the
adjudicator's grade, once given, is final. Until then that sign has no consensus grade (the
export leaves it blank). The consensus box is the per-coordinate median of the raters' boxes.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from device.core.vocab import Sign, parse_sign
from trainer.label.annotations import box_from_row, get_photo
from trainer.label.db import get_setting, transaction
from trainer.label.matching import Lesion, match_boxes
from trainer.label.models import GRADED_SIGNS, LabelError, NotFoundError, Photo
from trainer.label.photos import now

log = logging.getLogger(__name__)

#: Raters whose grades differ by this much or more need an adjudicator.
ADJUDICATE_SPREAD = 2


def median_grade(grades: list[int]) -> int:
    return math.floor(statistics.median(grades) + 0.5)


@dataclass(frozen=True)
class ConsensusBox:
    photo: Photo
    lesion: Lesion
    box: tuple[int, int, int, int]
    grades: dict[Sign, int | None] = field(hash=False)  # None: ungraded or awaiting adjudication
    disputed: tuple[Sign, ...] = ()    # spread >= 2 and not adjudicated yet
    adjudicated: dict[Sign, int] = field(default_factory=dict, hash=False)

    @property
    def n_raters(self) -> int:
        return len(self.lesion.boxes)

    def rater_grades(self, sign: Sign) -> list[int]:
        return [g for b in self.lesion.boxes if (g := b.grades.get(sign)) is not None]

    def agreement(self) -> float | None:
        """Share of rater pairs giving the same grade, over the three model signs."""
        same = total = 0
        for sign in GRADED_SIGNS[:3]:
            gs = self.rater_grades(sign)
            for i in range(len(gs)):
                for j in range(i + 1, len(gs)):
                    total += 1
                    same += gs[i] == gs[j]
        return same / total if total else None


def lesions_by_photo(db: sqlite3.Connection) -> dict[int, list[Lesion]]:
    """Every photo's lesions from the raters who answered it with boxes."""
    threshold = float(get_setting(db, "match_iou") or 0.3)
    boxes = defaultdict(list)
    for row in db.execute("SELECT * FROM boxes ORDER BY photo_id, id"):
        boxes[row["photo_id"]].append(box_from_row(row))
    return {pid: match_boxes(bs, threshold) for pid, bs in sorted(boxes.items())}


def adjudications(db: sqlite3.Connection) -> dict[int, dict[Sign, int]]:
    out: dict[int, dict[Sign, int]] = defaultdict(dict)
    for row in db.execute("SELECT anchor_box, sign, grade FROM adjudications"):
        out[row["anchor_box"]][Sign(row["sign"])] = row["grade"]
    return out


def consensus_of(photo: Photo, lesion: Lesion, adjudicated: dict[Sign, int]) -> ConsensusBox:
    grades: dict[Sign, int | None] = {}
    disputed = []
    for sign in GRADED_SIGNS:
        given = [g for b in lesion.boxes if (g := b.grades.get(sign)) is not None]
        if sign in adjudicated:
            grades[sign] = adjudicated[sign]
        elif not given:
            grades[sign] = None
        elif max(given) - min(given) >= ADJUDICATE_SPREAD:
            grades[sign] = None
            disputed.append(sign)
        else:
            grades[sign] = median_grade(given)
    box = tuple(round(statistics.median(getattr(b, k) for b in lesion.boxes)) for k in "xywh")
    x, y, w, h = box
    w, h = min(w, photo.width - x), min(h, photo.height - y)
    return ConsensusBox(photo, lesion, (x, y, w, h), grades, tuple(disputed),
                        {s: g for s, g in adjudicated.items()})


def all_consensus(db: sqlite3.Connection) -> list[ConsensusBox]:
    """Consensus of every lesion, photos in path order, lesions top-left first."""
    adj = adjudications(db)
    out = []
    for pid, lesions in lesions_by_photo(db).items():
        photo = get_photo(db, pid)
        out.extend(consensus_of(photo, les, adj.get(les.anchor, {})) for les in lesions)
    return sorted(out, key=lambda c: c.photo.relpath)


def adjudication_queue(db: sqlite3.Connection, *, include_done: bool = False) -> list[ConsensusBox]:
    return [c for c in all_consensus(db) if c.disputed or (include_done and c.adjudicated)]


def adjudicate(db: sqlite3.Connection, anchor: int, sign_text: str, grade: int,
               adjudicator: str) -> ConsensusBox:
    """Record the adjudicator's final grade of one sign of one lesion."""
    try:
        sign = parse_sign(sign_text)
    except ValueError as exc:
        raise LabelError(str(exc)) from None
    if not 0 <= grade <= 3:
        raise LabelError(f"grade {grade} is outside 0-3")
    target = next((c for c in all_consensus(db) if c.lesion.anchor == anchor), None)
    if target is None:
        raise NotFoundError(f"no lesion {anchor} in this project")
    if sign not in target.disputed and sign not in target.adjudicated:
        raise LabelError(f"lesion {anchor}: the raters agree on {sign.value}; nothing to decide")
    with transaction(db):
        db.execute("INSERT OR REPLACE INTO adjudications VALUES (?, ?, ?, ?, ?, ?)",
                   (target.photo.id, anchor, sign.value, grade, adjudicator, now()))
    log.info("%s adjudicated lesion %d %s = %d", adjudicator, anchor, sign.value, grade)
    return target
