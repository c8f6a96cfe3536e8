"""The scan page (staff): pick a patient and a region, preview, capture, review, save.

Flow: ``GET /scan`` shows the patient/region choice and the live preview (the
MJPEG stream of device.web.stream, with live hints and the crop square drawn over it).
``POST /scan/capture`` grades the frame on screen (or the camera's full-resolution
still, or an uploaded photo). A failed quality check shows why to retake and saves
nothing; a graded scan is saved to today's visit at once (so a power cut loses
nothing) and ``/scan/result/<id>`` shows the crop, the grades with their
probability bars and the review flag, with the override / papulation / area form.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import BadRequest, HTTPException

from device import actions
from device.core.easi import VALID_GRADES
from device.core.errors import InvalidInput
from device.core.imageio import encode_jpeg
from device.core.vocab import MODEL_SIGNS, REGIONS, Grade, Region, Sign, parse_region
from device.followup import FollowupScan
from device.scan.pipeline import ScanResult
from device.scan.preview import StreamState
from device.store.schema import RegionScan, StoreError
from device.vision.crop import guide_box
from device.web import lesions, recrop, stream
from device.web.auth import roles_required
from device.web.bodies import RecropBody, ReviewBody, parse_fields
from device.web.common import abort_store, actor, ctx, scan_aborts, scans, store
from device.web.uploads import UploadError, decode_image
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("scan", __name__)


def run_scan(image: np.ndarray | None = None) -> ScanResult:
    """Scan an uploaded image, or the camera's still: the frame on screen in the live
    preview (device.scan.preview.PreviewHub.still)."""
    service = ctx().service
    with scan_aborts():
        if image is None:
            image = stream.hub().still()
        return service.scanner.scan(image=image)


def save_scan(visit_id: int, region: Region, result: ScanResult,
              followup: FollowupScan | None = None) -> RegionScan:
    """Store a graded scan (or one the models abstained on: no model grades, staff
    grade it) in the visit (``actions.save_scan``), as of ``followup``'s lesion when it
    is a follow-up; returns the RegionScan."""
    scan = actions.save_scan(store(), visit_id, region, result, actor(),
                             lesion_id=followup.lesion.id if followup else None,
                             crop_origin=followup.crop_origin if followup else None)
    scans().remember(scan.id, result)  # its crop for a moment, its frame for a moved square
    return scan


def apply_review(scan_id: int, body: ReviewBody) -> RegionScan:
    """The staff's final grades, papulation and area % (``actions.apply_review``)."""
    return actions.apply_review(store(), scan_id, body.entry(), actor())


def _guide(width: int, height: int) -> dict[str, float]:
    """The guide square in pixels and as fractions of the frame (the preview's SVG)."""
    x, y, w, h = guide_box(height, width, ctx().config.crop.guide_fraction)
    return {"width": width, "height": height, "x": x, "y": y, "w": w, "h": h,
            "fx": x / width, "fy": y / height, "fw": w / width, "fh": h / height}


def _patient_visit(patient_id: str | None) -> tuple[Any, Any]:
    if not patient_id:
        return None, None
    st = store()
    try:
        patient = st.get_patient(patient_id)
    except StoreError:
        flash(f"No patient {patient_id!r}: create it first.", "error")
        return None, None
    return patient, st.open_visit(patient.id)


def _region(name: str | None) -> Region | None:
    try:
        return parse_region(name) if name else None
    except ValueError as exc:
        abort(400, description=str(exc))


def _page(status: int = 200, **extra: Any) -> Any:
    args = request.form if request.method == "POST" else request.args
    patient, visit = _patient_visit(args.get("patient") or args.get("patient_id"))
    cam = ctx().config.camera
    done = store().latest_scans(visit.id) if visit else {}
    lesion = lesions.patient_lesion(patient.id, args.get("lesion")) if patient else None
    region = lesion.region if lesion else _region(args.get("region"))
    page = render_template(
        "scan.html", nav="scan", patients=store().list_patients(), patient=patient, visit=visit,
        lesions=store().list_lesions(patient.id) if patient else [], lesion=lesion,
        overlay=lesion is not None and store().last_lesion_scan(lesion.id) is not None,
        region=region, regions=REGIONS, done=done,
        guide=_guide(cam.width, cam.height), crop_mode=ctx().config.crop.mode.value,
        camera=ctx().service.camera_status(), **extra)
    return page, status


@bp.route("/scan")
@roles_required(Role.STAFF)
def scan_page() -> Any:
    return _page()


@bp.route("/scan/preview.jpg")
@roles_required(Role.STAFF)
def preview() -> Response:
    """One frame of the live preview (for pages without the stream, and scripts)."""
    with stream.hub().watch() as viewer:
        frame = viewer.next_frame(5.0)
    if frame is None or frame.state is not StreamState.LIVE:
        abort(503, description="camera: no frame from the camera; check its cable and the "
                               "status page")
    resp = Response(frame.jpeg, mimetype="image/jpeg")
    resp.headers["X-Frame-Id"] = str(frame.seq)
    resp.headers["X-Frame-Size"] = f"{frame.width}x{frame.height}"
    return resp


@bp.route("/scan/capture", methods=["POST"])
@roles_required(Role.STAFF)
def capture() -> Any:
    patient, visit = _patient_visit(request.form.get("patient"))
    region = _region(request.form.get("region"))
    lesion = lesions.patient_lesion(patient.id, request.form.get("lesion")) if patient else None
    region = lesion.region if lesion else region  # a followed lesion stays in its region
    if patient is None or region is None:
        flash("Choose a patient and a body region first.", "error")
        return _page(400)
    upload = request.files.get("image")
    image = None
    if upload is not None and upload.filename:
        try:
            image = decode_image(upload.read())
        except UploadError as exc:
            flash(f"Photo refused: {exc}.", "error")
            return _page(exc.status)
    followup = lesions.follow(lesion, visit.id, image) if lesion else None
    result = followup.result if followup else run_scan(image)
    if not result.quality.ok or not (result.graded or result.abstained):
        scans().remember(None, result)
        return _page(422, retake=result.quality.reasons or ["the image could not be graded"],
                     retake_preview=encode_preview_data(result.image))
    scan = save_scan(visit.id, region, result, followup)
    if followup:
        flash(followup.note[:1].upper() + followup.note[1:], "warning" if followup.warn else "info")
    return redirect(url_for("scan.result_page", scan_id=scan.id))


def encode_preview_data(image: np.ndarray | None) -> str | None:
    """The refused frame as a small data: URL, so staff see what was wrong with it."""
    if image is None:
        return None
    import base64

    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(image, 70, max_side=320)).decode()


def _result_page(scan_id: int, status: int = 200) -> Any:
    st = store()
    try:
        scan = st.get_scan(scan_id)
        visit = st.get_visit(scan.visit_id)
        patient = st.get_patient(visit.patient_id)
        changes = st.grade_changes(scan_id)
        lesion = st.get_lesion(scan.lesion_id) if scan.lesion_id is not None else None
        others = st.list_lesions(patient.id) if lesion is None else []
    except StoreError as exc:
        abort_store(exc)
    return render_template(
        "result.html", nav="scan", scan=scan, visit=visit, patient=patient, changes=changes,
        lesion=lesion, other_lesions=[x for x in others if x.region is scan.region],
        MODEL_SIGNS=MODEL_SIGNS, Grade=Grade, Sign=Sign,
        valid_grades=VALID_GRADES, frame_size=recrop.frame_size(scan)), status


@bp.route("/scan/result/<int:scan_id>")
@roles_required(Role.STAFF)
def result_page(scan_id: int) -> Any:
    return _result_page(scan_id)


@bp.route("/scan/result/<int:scan_id>/recrop", methods=["POST"])
@bp.route("/scan/result/<int:scan_id>/regrade", methods=["POST"])  # its name until issue 22
@roles_required(Role.STAFF)
def recrop_form(scan_id: int) -> Any:
    """"Grade this square" on the result page (device.web.recrop does the recrop); a
    refusal shows its reason on the result page, grades unchanged."""
    box = [request.form.get(f"box_{k}") for k in ("x", "y", "w", "h")]
    try:
        recrop.recrop_box(scan_id, parse_fields(RecropBody, {"box": box}).box)
    except InvalidInput as exc:
        flash(f"Not recropped: {exc}", "error")
        return _result_page(scan_id, 400)
    except HTTPException as exc:
        flash(f"The square was not graded: {exc.description}", "error")
        return _result_page(scan_id, exc.code or 400)
    flash("Graded the square you moved.", "info")
    return redirect(url_for("scan.result_page", scan_id=scan_id))


@bp.route("/scan/result/<int:scan_id>/save", methods=["POST"])
@roles_required(Role.STAFF)
def save(scan_id: int) -> Any:
    fields = {k: v for k, v in request.form.items() if k in ReviewBody.model_fields}
    try:
        scan = apply_review(scan_id, parse_fields(ReviewBody, fields))
    except InvalidInput as exc:
        flash(f"Not saved: {exc}", "error")
        return _result_page(scan_id, 400)
    except BadRequest as exc:
        flash(f"Not saved: {exc.description}", "error")
        return _result_page(scan_id, 400)
    flash(f"Saved {scan.region.label}.", "info")
    return redirect(url_for("visits.visit_page", visit_id=scan.visit_id))
