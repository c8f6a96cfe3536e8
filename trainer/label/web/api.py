"""The rater's JSON API. A rater reads and writes only their own answers.

GET  /api/queue                  next photo id, progress, photos answered (for going back)
GET  /api/photos/<id>            the photo's size and this rater's answer
PUT  /api/photos/<id>/answer     body: {"boxes": [{x, y, w, h, erythema, ...}]} or
                                 {"unusable": "reason"}; replaces this rater's answer
Errors are JSON ``{"error": "..."}`` with 400 (bad input, a missing CSRF token), 401,
403 (not this rater's photo: not in their queue and not answered by them), 404 or 422.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from trainer.label.annotations import answered, get_answer, progress, queue, save_answer
from trainer.label.models import (
    GRADED_SIGNS,
    AnnotationIn,
    LabelError,
    NotAssignedError,
    NotFoundError,
    Role,
)
from trainer.label.web.db import get_db

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")


def _error(message: str, status: int) -> Any:
    return jsonify(error=message), status


@bp.errorhandler(LabelError)
def _label_error(exc: LabelError) -> Any:
    if isinstance(exc, NotAssignedError):
        return _error(str(exc), 403)
    return _error(str(exc), 404 if isinstance(exc, NotFoundError) else 400)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    return _error(exc.description or exc.name, exc.code or 500)


def _queue_state() -> dict[str, Any]:
    db, name = get_db(), g.user.name
    p = progress(db, name)
    waiting = queue(db, name)
    return {"next": waiting[0] if waiting else None, "answered": answered(db, name),
            "progress": {"done": p.done, "remaining": p.remaining, "total": p.total}}


@bp.get("/queue")
def get_queue() -> Any:
    return jsonify(_queue_state())


@bp.get("/photos/<int:photo_id>")
def get_photo_answer(photo_id: int) -> Any:
    a = get_answer(get_db(), photo_id, g.user.name)
    return jsonify(
        id=a.photo.id, file=a.photo.relpath, width=a.photo.width, height=a.photo.height,
        status=a.status.value if a.status else None, reason=a.reason,
        boxes=[{"x": b.x, "y": b.y, "w": b.w, "h": b.h,
                **{s.value: b.grades.get(s) for s in GRADED_SIGNS}} for b in a.boxes])


@bp.put("/photos/<int:photo_id>/answer")
def put_answer(photo_id: int) -> Any:
    if g.user.role is not Role.RATER:
        return _error("only raters save answers; adjudicators decide disputed grades", 403)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error("send a JSON object: {\"boxes\": [...]} or {\"unusable\": \"reason\"}", 400)
    try:
        answer = AnnotationIn.model_validate(body)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        return _error(f"photo {photo_id}: " + "; ".join(problems), 422)
    save_answer(get_db(), photo_id, g.user.name, answer)
    return jsonify(saved=photo_id, **_queue_state())
