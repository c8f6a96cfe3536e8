"""What the dashboard's pages and its JSON API both do, without Flask.

Each action takes its collaborators (the store, the acting user) as arguments and
raises the typed failures of ``device.core.errors`` (``InvalidInput``, ``NotFound``...),
which the web maps to HTTP answers in one place. Tests call these directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from device.core.easi import EASI_SIGNS
from device.core.errors import InvalidInput, NotFound
from device.core.vocab import MODEL_SIGNS, CropMode, Region, Role, Sign, parse_region
from device.scan.pipeline import ScanResult
from device.store import Store
from device.store.history import VisitHistory
from device.store.schema import (
    Capture,
    Patient,
    RegionScan,
    Visit,
    VisitRecord,
    VisitStatus,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who acts: the user name recorded beside each change, and their role."""

    username: str
    role: Role | None = None


def to_number(value: Any) -> float | None:
    """A number from a form field or JSON value (a decimal comma is accepted); None for
    empty; ``ValueError`` saying why when it is not a finite number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a number")
    return number


def to_whole(value: Any) -> int | None:
    number = to_number(value)
    if number is None:
        return None
    if number != int(number):
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def parse_whole(value: Any, what: str) -> int | None:
    try:
        return to_whole(value)
    except ValueError as exc:
        raise InvalidInput(f"{what}: {exc}") from None


def create_patient(store: Store, patient_id: str, birth_year: Any) -> Patient:
    return store.create_patient((patient_id or "").strip(), parse_whole(birth_year, "birth year"))


def visit_view(store: Store, visit_id: int) -> VisitRecord:
    """Everything the visit page and ``GET /api/visits/<id>`` show (``summary_dict``)."""
    return store.visit_record(visit_id)


def patient_view(store: Store, patient_id: str) -> tuple[Patient, list[VisitHistory]]:
    """The patient and their visit history (``Store.patient_history``)."""
    return store.get_patient(patient_id), store.patient_history(patient_id)


@dataclass(frozen=True)
class SignChange:
    """A sign's mean grade at the first and the latest visit that has it, and the change
    (None with a single such visit); all None when no visit has it."""

    sign: Sign
    first: float | None = None
    first_date: str | None = None
    last: float | None = None
    last_date: str | None = None
    change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``sign_changes`` in ``GET /api/patients/<id>``."""
        return {"sign": self.sign.value, "first": self.first, "first_date": self.first_date,
                "last": self.last, "last_date": self.last_date, "change": self.change}


def sign_changes(history: list[VisitHistory]) -> list[SignChange]:
    """Each sign's mean grade at the first and latest visit that has it, and the change."""
    rows = []
    for sign in EASI_SIGNS:
        values = [(h.date, h.sign_means.get(sign)) for h in history]
        values = [(d, v) for d, v in values if v is not None]
        if not values:
            rows.append(SignChange(sign))
            continue
        (d0, v0), (d1, v1) = values[0], values[-1]
        rows.append(SignChange(sign, v0, d0, v1, d1,
                               round(v1 - v0, 2) if len(values) > 1 else None))
    return rows


def clear_region(store: Store, visit_id: int, region_name: str, actor: Actor) -> RegionScan:
    """Record a region as examined with 0 % area (nothing to scan there)."""
    try:
        region = parse_region(region_name)
    except ValueError as exc:
        raise NotFound(str(exc)) from exc
    scan = store.save_region_scan(visit_id, region)
    return store.set_clinician_entries(scan.id, area_percent=0, user=actor.username)


def set_visit_status(store: Store, visit_id: int, value: str) -> Visit:
    try:
        status = VisitStatus(value)
    except ValueError:
        raise InvalidInput(f"status {value!r}: use open or closed") from None
    return store.set_visit_status(visit_id, status)


def save_scan(store: Store, visit_id: int, region: Region, result: ScanResult,
              actor: Actor, *, lesion_id: int | None = None,
              crop_origin: CropMode | None = None) -> RegionScan:
    """Store a graded scan in the visit: its record (``ScanResult.record()``, kept whole and
    as the row's grades, probabilities, review reasons, crop box and quality), the crop and
    the frame; one the models abstained on is stored too, without model grades, for staff
    to grade. ``lesion_id``: the followed lesion it is of; ``crop_origin`` overrides the
    crop mode recorded (a registered follow-up crop)."""
    record = result.record()
    crop = record.crop
    crop_mode = crop_origin or (crop.mode if crop else None)
    scan = store.save_region_scan(
        visit_id, region, grades={s: int(g.grade) for s, g in record.grades.items()},
        probs={s: list(g.probs) for s, g in record.grades.items()}, review=record.review,
        pack_version=record.pack_version, image=result.crop_image,
        capture=Capture(frame=result.image, box=crop.box if crop else None,
                        crop_mode=crop_mode.value if crop_mode else None,
                        quality=record.quality.measures, abstained=record.abstained,
                        abstention_score=record.abstention_score, colour=result.colour,
                        review_reasons={s: list(g.review_reasons)
                                        for s, g in record.grades.items()},
                        result=record),
        lesion_id=lesion_id)
    log.info("%s scanned %s for visit %s (scan %s, review %s)", actor.username, region.value,
             visit_id, scan.id, result.review)
    return scan


@dataclass(frozen=True)
class ReviewEntry:
    """What staff enter when they save a scan's review: a final grade for some model
    signs (the others stay as they are), papulation and area % (None: unchanged)."""

    grades: dict[Sign, float] = field(default_factory=dict)
    papulation: float | None = None
    area_percent: float | None = None


def apply_review(store: Store, scan_id: int, entry: ReviewEntry, actor: Actor) -> RegionScan:
    """The staff's final grades (overrides where they differ from the current grade),
    papulation and area %, then the record that this user confirmed the grades."""
    scan = store.get_scan(scan_id)
    role = actor.role.value if actor.role else None
    for sign, value in entry.grades.items():
        if sign not in MODEL_SIGNS:
            raise InvalidInput(f"{sign.value}: not a model sign; enter it as papulation")
        if value != scan.final_grades.get(sign):
            scan = store.override_grade(scan_id, sign, value, actor.username, role)
    if entry.papulation is not None or entry.area_percent is not None:
        scan = store.set_clinician_entries(scan_id, papulation=entry.papulation,
                                           area_percent=entry.area_percent, user=actor.username)
    return store.confirm_review(scan_id, actor.username, role)
