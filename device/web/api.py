"""The JSON API: the pages' actions for scripts and other programs (device/web/API.md).

Same login (session cookie from POST /login) and roles as the pages. Every
state-changing call (POST) needs the ``X-CSRFToken`` header with the token
from ``GET /api/csrf``. Errors are ``{"error": "..."}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf

from device import actions
from device.store.schema import StoreError
from device.web import packs as packs_view
from device.web import scan as scan_view
from device.web import visits as visits_view
from device.web.auth import current_user, roles_required
from device.web.bodies import PatientBody, ReviewBody, ScanBody, VisitStatusBody, parse_body
from device.web.common import abort_store, actor, scans, store
from device.web.uploads import UploadError, decode_image
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.route("/csrf")
def csrf() -> ResponseReturnValue:
    return jsonify(csrf_token=generate_csrf())


@bp.route("/me")
def me() -> ResponseReturnValue:
    user = current_user()
    return jsonify(username=user.username, role=user.role.value, created=user.created)


@bp.route("/patients", methods=["GET", "POST"])
@roles_required(Role.STAFF)
def patients() -> ResponseReturnValue:
    if request.method == "POST":
        body = parse_body(PatientBody)
        patient = store().create_patient(body.patient_id or "", body.birth_year)
        return jsonify(patient.to_dict()), 201
    search = request.args.get("q", "").strip() or None
    return jsonify(patients=[p.to_dict() for p in store().list_patients(search)])


@bp.route("/patients/<patient_id>")
@roles_required(Role.STAFF)
def patient(patient_id: str) -> ResponseReturnValue:
    found, history = actions.patient_view(store(), patient_id)
    return jsonify(patient=found.to_dict(), history=[h.to_dict() for h in history],
                   sign_changes=[row.to_dict() for row in actions.sign_changes(history)])


@bp.route("/patients/<patient_id>/visits", methods=["GET", "POST"])
@roles_required(Role.STAFF)
def patient_visits(patient_id: str) -> ResponseReturnValue:
    st = store()
    try:
        if request.method == "POST":
            visit = st.open_visit(patient_id)
            return jsonify(visit.to_dict()), 201
        visits = st.list_visits(patient_id)
    except StoreError as exc:
        abort_store(exc)
    return jsonify(visits=[v.to_dict() for v in visits])


@bp.route("/visits/<int:visit_id>")
@roles_required(Role.STAFF)
def visit(visit_id: int) -> ResponseReturnValue:
    return jsonify(actions.visit_view(store(), visit_id).summary_dict())


@bp.route("/visits/<int:visit_id>/status", methods=["POST"])
@roles_required(Role.STAFF)
def visit_status(visit_id: int) -> ResponseReturnValue:
    changed = store().set_visit_status(visit_id, parse_body(VisitStatusBody).status)
    return jsonify(changed.to_dict())


@bp.route("/visits/<int:visit_id>/regions/<region>/clear", methods=["POST"])
@roles_required(Role.STAFF)
def clear_region(visit_id: int, region: str) -> ResponseReturnValue:
    scan = actions.clear_region(store(), visit_id, region, actor())
    return jsonify(scan.to_dict()), 201


@bp.route("/visits/<int:visit_id>/export.<fmt>")
@roles_required(Role.STAFF)
def export(visit_id: int, fmt: str) -> ResponseReturnValue:
    return visits_view.export_response(visit_id, fmt)


@bp.route("/scan", methods=["POST"])
@roles_required(Role.STAFF)
def scan() -> ResponseReturnValue:
    """Grade an uploaded photo (multipart field ``image``) or a camera frame. With
    ``patient_id`` and ``region`` the graded scan is saved to today's visit."""
    body = parse_body(ScanBody)
    image = None
    upload = request.files.get("image")
    if upload is not None:
        try:
            image = decode_image(upload.read())
        except UploadError as exc:
            abort(exc.status, description=str(exc))
    elif "image" in request.form:
        abort(400, description="send the photo as a file (multipart/form-data field 'image')")
    region = visit = None
    if body.patient_id:
        region = scan_view._region(body.region)
        try:
            visit = store().open_visit(body.patient_id)
        except StoreError as exc:
            abort_store(exc)
    result = scan_view.run_scan(image)
    reply = {"result": result.to_dict(), "saved": False, "scan": None}
    if not result.quality.ok or not (result.graded or result.abstained):
        scans().remember(None, result)
        reasons = result.quality.reasons or ["the image could not be graded"]
        return jsonify({**reply, "error": "retake: " + "; ".join(reasons)}), 422
    if visit is None:
        scans().remember(None, result)
        return jsonify(reply), 200
    saved = scan_view.save_scan(visit.id, region, result)
    reply.update(saved=True, scan=saved.to_dict())
    return jsonify(reply), 201


@bp.route("/scans/<int:scan_id>")
@roles_required(Role.STAFF)
def scan_get(scan_id: int) -> ResponseReturnValue:
    st = store()
    try:
        found = st.get_scan(scan_id)
        changes = st.grade_changes(scan_id)
    except StoreError as exc:
        abort_store(exc)
    return jsonify(scan=found.to_dict(), changes=changes,
                   details=found.result.to_dict() if found.result else None)


@bp.route("/scans/<int:scan_id>/review", methods=["POST"])
@roles_required(Role.STAFF)
def scan_review(scan_id: int) -> ResponseReturnValue:
    """Final grades (overrides), papulation and area % for one scan."""
    body = parse_body(ReviewBody)
    updated = scan_view.apply_review(scan_id, body)
    return jsonify(scan=updated.to_dict(), changes=store().grade_changes(scan_id))


@bp.route("/packs", methods=["GET", "POST"])
@roles_required(Role.TECHNICIAN)
def packs() -> ResponseReturnValue:
    if request.method == "POST":
        try:
            result = packs_view.install_upload(request.files.get("pack"))
        except packs_view.PackUploadError as exc:
            return jsonify(error=str(exc), problems=exc.problems), exc.status
        if result.rolled_back is not None:  # installed, failed to load, rolled back by the service
            return jsonify({**result.to_dict(), "error": result.rollback_sentence()}), 422
        return jsonify(result.to_dict()), 201
    from device.web.status import pack_status

    return jsonify(running=pack_status(), packs=packs_view.packs_data())


@bp.route("/packs/rollback", methods=["POST"])
@roles_required(Role.TECHNICIAN)
def packs_rollback() -> ResponseReturnValue:
    try:
        result = packs_view.do_rollback()
    except packs_view.PackUploadError as exc:
        return jsonify(error=str(exc), problems=exc.problems), exc.status
    return jsonify(result.to_dict())
