"""What raters do, without Flask: their queue, their saved answer per photo, a save.

A save replaces the rater's whole answer for one photo (boxes or unusable) in one
transaction. A rater only ever reads their own boxes; an adjudicator reads everyone's
through ``consensus``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from device.core.vocab import Sign, parse_region
from trainer.label.db import get_setting, transaction
from trainer.label.models import (
    GRADED_SIGNS,
    AnnotationIn,
    Box,
    BoxIn,
    NotAssignedError,
    NotFoundError,
    Photo,
    Status,
)
from trainer.label.photos import now

log = logging.getLogger(__name__)

#: Test hook: called between the writes of one save (the kill -9 test). None in production.
mid_save_hook: Callable[[], None] | None = None

GRADE_COLUMNS = ", ".join(s.value for s in GRADED_SIGNS)


@dataclass(frozen=True)
class Progress:
    done: int
    remaining: int

    @property
    def total(self) -> int:
        return self.done + self.remaining


@dataclass(frozen=True)
class Answer:
    photo: Photo
    status: Status | None  # None: not answered yet
    reason: str | None
    boxes: list[Box]


def photo_from_row(row: sqlite3.Row) -> Photo:
    return Photo(id=row["id"], relpath=row["relpath"], sha256=row["sha256"], width=row["width"],
                 height=row["height"], patient_id=row["patient_id"],
                 region=parse_region(row["region"]) if row["region"] else None,
                 overlap=bool(row["overlap"]))


def box_from_row(row: sqlite3.Row) -> Box:
    return Box(id=row["id"], photo_id=row["photo_id"], rater=row["rater"], x=row["x"],
               y=row["y"], w=row["w"], h=row["h"],
               grades={s: row[s.value] for s in GRADED_SIGNS}, note=row["note"])


def get_photo(db: sqlite3.Connection, photo_id: int) -> Photo:
    row = db.execute("SELECT * FROM photos WHERE id = ?", (photo_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no photo {photo_id} in this project")
    return photo_from_row(row)


def all_photos(db: sqlite3.Connection) -> list[Photo]:
    return [photo_from_row(r) for r in db.execute("SELECT * FROM photos ORDER BY relpath")]


#: Photo ``p`` waits for rater ``?1``: not answered by them, and fewer raters than it needs
#: (``?2`` for an overlap photo, else one). The queue and the save check share it.
_WAITING = ("NOT EXISTS (SELECT 1 FROM answers a WHERE a.photo_id = p.id AND a.rater = ?1)"
            " AND (SELECT COUNT(*) FROM answers a WHERE a.photo_id = p.id)"
            "     < CASE WHEN p.overlap THEN ?2 ELSE 1 END")


def queue(db: sqlite3.Connection, rater: str) -> list[int]:
    """Photo ids still waiting for this rater, in order: photos nobody else needs to do."""
    wanted = int(get_setting(db, "overlap_raters") or 2)
    rows = db.execute(f"SELECT p.id FROM photos p WHERE {_WAITING}"
                      " ORDER BY p.overlap DESC, p.id", (rater, wanted)).fetchall()
    return [r[0] for r in rows]


def check_assigned(db: sqlite3.Connection, photo: Photo, rater: str) -> None:
    """A rater saves only photos of their own queue, or re-saves their own answers: a grade
    on any other photo would enter the consensus and the agreement figures. Raises
    NotAssignedError."""
    wanted = int(get_setting(db, "overlap_raters") or 2)
    mine = db.execute("SELECT 1 FROM answers WHERE photo_id = ? AND rater = ?",
                      (photo.id, rater)).fetchone()
    waiting = db.execute(f"SELECT 1 FROM photos p WHERE p.id = ?3 AND {_WAITING}",
                         (rater, wanted, photo.id)).fetchone()
    if mine is None and waiting is None:
        raise NotAssignedError(f"photo {photo.relpath} is not in {rater}'s queue (it has all "
                               "the raters it needs): take the next photo of your queue")


def progress(db: sqlite3.Connection, rater: str) -> Progress:
    done = db.execute("SELECT COUNT(*) FROM answers WHERE rater = ?", (rater,)).fetchone()[0]
    return Progress(done=int(done), remaining=len(queue(db, rater)))


def answered(db: sqlite3.Connection, rater: str) -> list[int]:
    """Photo ids this rater has answered, oldest save first (for going back)."""
    return [r[0] for r in db.execute(
        "SELECT photo_id FROM answers WHERE rater = ? ORDER BY saved, photo_id", (rater,))]


def rater_boxes(db: sqlite3.Connection, photo_id: int, rater: str) -> list[Box]:
    rows = db.execute("SELECT * FROM boxes WHERE photo_id = ? AND rater = ? ORDER BY id",
                      (photo_id, rater))
    return [box_from_row(r) for r in rows]


def get_answer(db: sqlite3.Connection, photo_id: int, rater: str) -> Answer:
    photo = get_photo(db, photo_id)
    row = db.execute("SELECT status, reason FROM answers WHERE photo_id = ? AND rater = ?",
                     (photo_id, rater)).fetchone()
    return Answer(photo=photo, status=Status(row["status"]) if row else None,
                  reason=row["reason"] if row else None,
                  boxes=rater_boxes(db, photo_id, rater) if row else [])


def write_answer(db: sqlite3.Connection, photo: Photo, rater: str, answer: AnnotationIn,
                 where: str) -> None:
    """The writes of one save; the caller holds the transaction."""
    for n, box in enumerate(answer.boxes, start=1):
        box.check_inside(photo.width, photo.height, f"{where}, box {n}")
    # A decision on a lesion holding one of these boxes was about grades that are being
    # replaced: drop it (the lesion returns to the queue if its raters still disagree).
    db.execute("DELETE FROM adjudications WHERE anchor_box IN"
               " (SELECT id FROM boxes WHERE photo_id = ? AND rater = ?)", (photo.id, rater))
    db.execute("DELETE FROM boxes WHERE photo_id = ? AND rater = ?", (photo.id, rater))
    db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
               (photo.id, rater, answer.status.value, answer.unusable, now()))
    for box in answer.boxes:
        insert_box(db, photo.id, rater, box)
        if mid_save_hook is not None:
            mid_save_hook()


def insert_box(db: sqlite3.Connection, photo_id: int, rater: str, box: BoxIn) -> None:
    grades = box.grades()
    db.execute(f"INSERT INTO boxes (photo_id, rater, x, y, w, h, {GRADE_COLUMNS}, note)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (photo_id, rater, box.x, box.y, box.w, box.h, *(grades[s] for s in GRADED_SIGNS),
                box.note or None))


def save_answer(db: sqlite3.Connection, photo_id: int, rater: str, answer: AnnotationIn) -> None:
    """Replace ``rater``'s answer for one photo, all or nothing (only a photo of their
    queue or one they answered before: NotAssignedError)."""
    photo = get_photo(db, photo_id)
    with transaction(db):  # checked inside: two raters racing for a last slot get one each
        check_assigned(db, photo, rater)
        write_answer(db, photo, rater, answer, f"photo {photo.relpath}")
    log.info("%s saved photo %s (%s, %d boxes)", rater, photo.relpath, answer.status.value,
             len(answer.boxes))


def ungraded_signs(box: Box) -> list[Sign]:
    return [s for s in GRADED_SIGNS[:3] if box.grades.get(s) is None]
