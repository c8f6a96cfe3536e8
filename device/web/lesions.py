"""Followed lesions (staff): the timeline page, the last photo the capture screen lays
over the live preview, and starting to follow a lesion from a scan.

``GET /lesions/<id>`` each visit's crop side by side, the three grades over time
(server-side SVG) and the change since the first and the last visit;
``GET /lesions/<id>/last.jpg`` the lesion's last kept frame (the aiming overlay);
``POST /scans/<id>/lesion`` (form: ``site``, ``label``) starts a lesion from the scan,
or (form: ``lesion``) marks the scan as of an existing lesion of the patient.
``follow`` is what the capture route calls for a follow-up (device.followup).
"""

from __future__ import annotations

import logging

import numpy as np
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from device.core.imageio import encode_jpeg
from device.core.vocab import MODEL_SIGNS
from device.followup import FollowupScan, scan_lesion
from device.scan.recrop import FrameGone, scan_frame
from device.store.schema import Lesion, RecordNotFoundError, StoreError
from device.store.timeline import MARK_CHANGE, lesion_timeline
from device.web import recrop, stream
from device.web.auth import roles_required
from device.web.common import abort_store, ctx, scan_aborts, store
from device.web.svg import grades_chart
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("lesions", __name__)

#: Longest side of the aiming overlay (the preview is at most this wide on the screen).
OVERLAY_SIDE = 800


def patient_lesion(patient_id: str, value: str | None) -> Lesion | None:
    """The lesion a form or query names (``lesion``), checked to be the patient's."""
    if not value:
        return None
    try:
        lesion = store().get_lesion(int(value))
    except ValueError:
        abort(400, description=f"lesion {value!r} is not a lesion number")
    except StoreError as exc:
        abort_store(exc)
    if lesion.patient_id != patient_id:
        abort(400, description=f"lesion {lesion.id} belongs to another patient; choose one of "
                               f"{patient_id}'s lesions")
    return lesion


def follow(lesion: Lesion, visit_id: int, image: np.ndarray | None) -> FollowupScan:
    """Scan the photo (an upload, else the frame on screen) as a follow-up of ``lesion``."""
    with scan_aborts():
        if image is None:
            image = stream.hub().still()
        return scan_lesion(ctx().service.scanner, store(), recrop.frame_cache(), lesion,
                           visit_id, image)


@bp.route("/lesions/<int:lesion_id>")
@roles_required(Role.STAFF)
def timeline_page(lesion_id: int) -> ResponseReturnValue:
    try:
        timeline = lesion_timeline(store(), lesion_id)
        patient = store().get_patient(timeline.lesion.patient_id)
    except StoreError as exc:
        abort_store(exc)
    chart = grades_chart(timeline.labels(), [(s.value.capitalize(), v)
                                             for s, v in timeline.series().items()],
                         width=440, height=240,
                         title=f"Grades of {timeline.lesion.label} over visits")
    return render_template("lesion.html", nav="patients", t=timeline, patient=patient,
                           chart=chart, changes=timeline.changes(), MODEL_SIGNS=MODEL_SIGNS,
                           mark=MARK_CHANGE)


@bp.route("/lesions/<int:lesion_id>/last.jpg")
@roles_required(Role.STAFF)
def last_photo(lesion_id: int) -> Response:
    try:
        last = store().last_lesion_scan(lesion_id)
    except StoreError as exc:
        abort_store(exc)
    if last is None:
        abort(404, description=f"lesion {lesion_id} has no kept photo yet")
    try:
        rgb = scan_frame(last, store(), recrop.frame_cache())
    except FrameGone as exc:
        abort(404, description=str(exc))
    return Response(encode_jpeg(rgb, 80, max_side=OVERLAY_SIDE), mimetype="image/jpeg")


@bp.route("/scans/<int:scan_id>/lesion", methods=["POST"])
@roles_required(Role.STAFF)
def set_lesion(scan_id: int) -> ResponseReturnValue:
    st = store()
    try:
        scan = st.get_scan(scan_id)
    except RecordNotFoundError as exc:  # no such scan: no result page to go back to
        abort(404, description=str(exc))
    try:
        if request.form.get("lesion"):
            patient_id = st.get_visit(scan.visit_id).patient_id
            lesion = patient_lesion(patient_id, request.form["lesion"])
            st.set_scan_lesion(scan_id, lesion.id if lesion else None)
        else:
            lesion = st.start_lesion_from_scan(scan_id, request.form.get("site", ""),
                                               request.form.get("label"))
    except StoreError as exc:
        flash(f"Not followed: {exc}", "error")
        return redirect(url_for("scan.result_page", scan_id=scan_id))
    flash(f"Scan {scan_id} is of lesion {lesion.label}: follow it up from the scan page.", "info")
    return redirect(url_for("scan.result_page", scan_id=scan_id))
