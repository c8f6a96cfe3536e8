"""The recrop (staff move the crop square after Capture and the same frame is graded
again inside it): the frozen frame, and "Grade this square".

``GET /scan/result/<id>/frame.jpg`` is the captured frame; ``POST
/api/scans/<id>/recrop`` (JSON ``{"box": [x, y, w, h]}``) and the result page's form
(``POST /scan/result/<id>/recrop``, in device.web.scan: box_x, box_y, box_w, box_h in
frame pixels) recrop the scan (device.scan.recrop, through ``recrop_box``) and record who
moved the square. Both URLs also answer under their old name, ``.../regrade``.
"""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
)
from flask.typing import ResponseReturnValue

from device.core.errors import AtopiscanError, http_status
from device.core.imageio import encode_jpeg
from device.scan.pipeline import ScanError
from device.scan.recrop import FrameCache, FrameGone, Recrop, recrop, scan_frame
from device.store.schema import RegionScan, StoreError
from device.web.auth import current_user, roles_required
from device.web.bodies import RecropBody, parse_body
from device.web.common import abort_store, ctx, scans, store
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("recrop", __name__)

#: Longest side of the frozen frame sent to the page (the square is mapped back to pixels).
FRAME_SIDE = 960


def frame_cache() -> FrameCache:
    return scans().frames


def frame_size(scan: RegionScan) -> tuple[int, int] | None:
    """(width, height) of the scan's captured frame, or None when it is no longer kept."""
    frame = frame_cache().get(scan.id)
    if frame is not None:
        return frame.shape[1], frame.shape[0]
    if scan.frame_path and (store().data_dir / scan.frame_path).is_file():
        from PIL import Image

        with Image.open(store().data_dir / scan.frame_path) as image:
            return image.size
    return None


def _scan(scan_id: int) -> RegionScan:
    try:
        return store().get_scan(scan_id)
    except StoreError as exc:
        abort_store(exc)


@bp.route("/scan/result/<int:scan_id>/frame.jpg")
@roles_required(Role.STAFF)
def frame(scan_id: int) -> Response:
    try:
        rgb = scan_frame(_scan(scan_id), store(), frame_cache())
    except FrameGone as exc:
        abort(404, description=str(exc))
    return Response(encode_jpeg(rgb, 85, max_side=FRAME_SIDE), mimetype="image/jpeg")


def recrop_box(scan_id: int, box: tuple[float, float, float, float]) -> Recrop:
    """Recrop scan ``scan_id`` to ``box``; a typed failure becomes its HTTP error with the reason."""
    try:
        done = recrop(ctx().service.scanner, store(), frame_cache(), scan_id, box,
                       current_user().username)
    except (AtopiscanError, StoreError, ScanError) as exc:
        abort(http_status(exc), description=str(exc))
    scans().remember(scan_id, done.result)
    return done


@bp.route("/api/scans/<int:scan_id>/recrop", methods=["POST"])
@bp.route("/api/scans/<int:scan_id>/regrade", methods=["POST"])  # its name until issue 22
@roles_required(Role.STAFF)
def recrop_api(scan_id: int) -> ResponseReturnValue:
    done = recrop_box(scan_id, parse_body(RecropBody).box)
    return jsonify(scan=done.scan.to_dict(), result=done.result.to_dict(),
                   changes=store().grade_changes(scan_id))
