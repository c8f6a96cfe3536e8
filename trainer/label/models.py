"""Typed contracts of the labelling studio: roles, boxes, grades, annotations."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device.core.vocab import MODEL_SIGNS, NUM_GRADES, Region, Sign

log = logging.getLogger(__name__)

#: Signs a rater grades per box: the three model signs, then papulation (optional).
GRADED_SIGNS: tuple[Sign, ...] = (*MODEL_SIGNS, Sign.PAPULATION)
MAX_GRADE = NUM_GRADES - 1


class LabelError(Exception):
    """Bad input or an impossible request, with a message a person can act on."""


class NotFoundError(LabelError):
    """No such photo, box or user."""


class NotAssignedError(LabelError):
    """The photo is not this rater's to grade (not in their queue, not answered by them)."""


class Role(str, Enum):
    RATER = "rater"
    ADJUDICATOR = "adjudicator"

    def __str__(self) -> str:
        return self.value


def parse_role(text: str) -> Role:
    for role in Role:
        if role.value == str(text).strip().lower():
            return role
    raise LabelError(f"unknown role {text!r}: expected rater or adjudicator")


class Status(str, Enum):
    """A rater's verdict on one photo."""

    DONE = "done"
    UNUSABLE = "unusable"


Grade0to3 = Field(default=None, ge=0, le=MAX_GRADE)


class BoxIn(BaseModel):
    """One lesion box as a rater saves it: photo pixels, grades 0-3 (None: not graded)."""

    model_config = ConfigDict(extra="forbid")

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)
    erythema: int | None = Grade0to3
    excoriation: int | None = Grade0to3
    lichenification: int | None = Grade0to3
    papulation: int | None = Grade0to3
    note: str | None = Field(default=None, max_length=200)

    def grades(self) -> dict[Sign, int | None]:
        return {s: getattr(self, s.value) for s in GRADED_SIGNS}

    def check_inside(self, width: int, height: int, where: str) -> None:
        if self.x + self.w > width or self.y + self.h > height:
            raise LabelError(
                f"{where}: box x={self.x} y={self.y} w={self.w} h={self.h} reaches outside the "
                f"photo ({width}x{height} pixels); keep it inside the photo")


class AnnotationIn(BaseModel):
    """A rater's whole answer for one photo: boxes, or unusable with a reason."""

    model_config = ConfigDict(extra="forbid")

    boxes: list[BoxIn] = Field(default_factory=list, max_length=100)
    unusable: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_or_other(self) -> AnnotationIn:
        if self.unusable is not None and not self.unusable.strip():
            raise ValueError("unusable needs a reason (e.g. blurred, no lesion, not skin)")
        if self.unusable and self.boxes:
            raise ValueError("a photo marked unusable cannot also have boxes")
        if not self.unusable and not self.boxes:
            raise ValueError("draw at least one lesion box, or mark the photo unusable")
        return self

    @property
    def status(self) -> Status:
        return Status.UNUSABLE if self.unusable else Status.DONE


@dataclass(frozen=True)
class Photo:
    id: int
    relpath: str  # relative to the project's photos folder, POSIX
    sha256: str
    width: int  # after EXIF orientation
    height: int
    patient_id: str
    region: Region | None
    overlap: bool  # goes to more than one rater


@dataclass(frozen=True)
class Box:
    """A saved box of one rater on one photo."""

    id: int
    photo_id: int
    rater: str
    x: int
    y: int
    w: int
    h: int
    grades: dict[Sign, int | None] = field(hash=False)
    note: str | None = None

    @property
    def xywh(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    def graded(self, sign: Sign) -> int | None:
        return self.grades.get(sign)
