"""HTML pages: the rater's labelling page, the adjudicator's queue, and photo pixels."""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from device.core.atomic import atomic_write_bytes
from device.core.imageio import encode_jpeg
from trainer.label.annotations import get_photo
from trainer.label.consensus import adjudicate as record_adjudication
from trainer.label.consensus import adjudication_queue
from trainer.label.db import photos_dir
from trainer.label.models import GRADED_SIGNS, LabelError, NotFoundError, Role
from trainer.label.photos import read_rgb
from trainer.label.web.auth import home_for, role_required
from trainer.label.web.db import get_db

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)
#: Longest side of the photo sent to the browser (boxes stay in the original's pixels).
DISPLAY_SIDE = 1600
CROP_SIDE = 240


@bp.errorhandler(LabelError)
def _label_error(exc: LabelError) -> Any:
    """A photo gone from disk or unreadable since init: say which, no traceback."""
    return Response(str(exc), status=404, mimetype="text/plain")


@bp.get("/")
def index() -> Any:
    return redirect(home_for(g.user))


@bp.get("/label")
@role_required(Role.RATER)
def label() -> str:
    return render_template("label.html", signs=[s.value for s in GRADED_SIGNS])


@bp.get("/adjudicate")
@role_required(Role.ADJUDICATOR)
def adjudicate() -> str:
    items = adjudication_queue(get_db(), include_done=True)
    return render_template("adjudicate.html", items=items, signs=GRADED_SIGNS,
                           message=request.args.get("message"))


@bp.post("/adjudicate")
@role_required(Role.ADJUDICATOR)
def adjudicate_save() -> Any:
    try:
        anchor, grade = int(request.form["lesion"]), int(request.form["grade"])
        c = record_adjudication(get_db(), anchor, request.form["sign"], grade, g.user.name)
    except (KeyError, ValueError):
        abort(400, "the form needs lesion, sign and a grade 0-3")
    except NotFoundError as exc:
        abort(404, str(exc))
    except LabelError as exc:
        abort(400, str(exc))
    msg = f"saved: {request.form['sign']} = {grade} on {c.photo.relpath}"
    return redirect(url_for("pages.adjudicate", message=msg))


def _jpeg(data: bytes) -> Response:
    resp = Response(data, mimetype="image/jpeg")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.get("/photos/<int:photo_id>/image")
def photo_image(photo_id: int) -> Response:
    """The photo as displayed (EXIF applied), shrunk for the browser, cached per sha256."""
    db = get_db()
    try:
        photo = get_photo(db, photo_id)
    except NotFoundError as exc:
        abort(404, str(exc))
    cached = current_app.config["PROJECT"].cache / f"{photo.sha256}.jpg"
    if not cached.exists():
        rgb = read_rgb(photos_dir(db) / photo.relpath)
        atomic_write_bytes(cached, encode_jpeg(rgb, 90, max_side=DISPLAY_SIDE))
    return _jpeg(cached.read_bytes())


@bp.get("/photos/<int:photo_id>/crop")
@role_required(Role.ADJUDICATOR)
def photo_crop(photo_id: int) -> Response:
    """One box of a photo (?x=&y=&w=&h=), for the adjudicator to look at."""
    db = get_db()
    try:
        photo = get_photo(db, photo_id)
        x, y, w, h = (int(request.args[k]) for k in "xywh")
    except NotFoundError as exc:
        abort(404, str(exc))
    except (KeyError, ValueError):
        abort(400, "give x, y, w and h as whole numbers")
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > photo.width or y + h > photo.height:
        abort(400, f"box {x},{y},{w},{h} is not inside the {photo.width}x{photo.height} photo")
    rgb = read_rgb(photos_dir(db) / photo.relpath)[y:y + h, x:x + w]
    return _jpeg(encode_jpeg(rgb, 88, max_side=CROP_SIDE))
