"""The JSON API's request bodies as pydantic models: validation and its messages in one
place (a JSON object, or the fields of a form post). A refused body is an
``InvalidInput`` (400) naming each field and what is wrong with it."""

from __future__ import annotations

import logging
from typing import Annotated, Any, TypeVar

from flask import request
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from device.actions import ReviewEntry, to_number, to_whole
from device.core.errors import InvalidInput, validation_problems
from device.core.vocab import MODEL_SIGNS
from device.store.schema import VisitStatus

log = logging.getLogger(__name__)

#: A number field: a JSON number or a form string (decimal comma allowed); empty is None.
Number = Annotated[float | None, BeforeValidator(to_number)]
WholeNumber = Annotated[int | None, BeforeValidator(to_whole)]
Text = Annotated[str | None, BeforeValidator(lambda v: None if v is None else str(v).strip() or None)]


class PatientBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    patient_id: Text = None
    birth_year: WholeNumber = None


class VisitStatusBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: VisitStatus


class ScanBody(BaseModel):
    """``POST /api/scan``: save to today's visit of ``patient_id`` in ``region``, or grade only."""

    model_config = ConfigDict(extra="ignore")

    patient_id: Text = None
    region: Text = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> ScanBody:
        if bool(self.patient_id) != bool(self.region):
            raise ValueError("give both patient_id and region to save the scan, or neither "
                             "to grade only")
        return self


class ReviewBody(BaseModel):
    """``POST /api/scans/<id>/review`` and the result page's form: final grades,
    papulation and area %."""

    model_config = ConfigDict(extra="forbid")

    erythema: Number = None
    excoriation: Number = None
    lichenification: Number = None
    papulation: Number = None
    area_percent: Number = None

    def entry(self) -> ReviewEntry:
        """The review as device.actions takes it."""
        return ReviewEntry(
            grades={s: g for s in MODEL_SIGNS if (g := getattr(self, s.value)) is not None},
            papulation=self.papulation, area_percent=self.area_percent)


def _four_numbers(value: Any) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ValueError("give four numbers x, y, w, h (pixels of the captured frame)")
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{list(value)!r} is not four numbers x, y, w, h") from None


class RecropBody(BaseModel):
    """``POST /api/scans/<id>/recrop`` (JSON) and the result page's form (box_x, box_y,
    box_w, box_h): the moved square, x, y, w, h in pixels of the captured frame."""

    model_config = ConfigDict(extra="forbid")

    box: Annotated[tuple[float, float, float, float], BeforeValidator(_four_numbers)]


Body = TypeVar("Body", bound=BaseModel)


def raw_body() -> dict[str, Any]:
    """The JSON object body, or the form fields of a multipart/urlencoded request."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InvalidInput("the request body must be a JSON object")
        return data
    return request.form.to_dict()


def parse_body(model: type[Body]) -> Body:
    """The request's body as ``model``; ``InvalidInput`` listing every refused field."""
    return parse_fields(model, raw_body())


def parse_fields(model: type[Body], data: dict[str, Any]) -> Body:
    """``data`` (e.g. a form's fields) as ``model``; ``InvalidInput`` listing every refused
    field."""
    known = ", ".join(model.model_fields)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, unknown_key=f"unknown field; use {known}")
        raise InvalidInput("; ".join(str(p).removeprefix("<top>: ") for p in problems)) from None
