"""Patients, visit summaries, patient history and exports (staff pages)."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from device.easi import EASI_SIGNS
from device.store.model import StoreError, VisitStatus
from device.vocab import MODEL_SIGNS, REGIONS, Sign, parse_region
from device.web.auth import current_user, roles_required
from device.web.common import abort_store, form_int, store
from device.web.exports import visit_csv
from device.web.fhir import visit_bundle
from device.web.svg import Point, trend_chart
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("visits", __name__)

EXPORT_FORMATS = ("csv", "json", "fhir")


def create_patient(patient_id: str, birth_year: Any) -> Any:
    """Create a patient from form/JSON input; StoreError becomes a 400."""
    year = form_int(birth_year, "birth year")
    try:
        return store().create_patient((patient_id or "").strip(), year)
    except StoreError as exc:
        abort(400, description=str(exc))


def visit_view(visit_id: int) -> dict[str, Any]:
    """Everything the visit summary page and /api/visits/<id> show."""
    st = store()
    try:
        visit = st.get_visit(visit_id)
        patient = st.get_patient(visit.patient_id)
        result = st.visit_summary(visit_id)
        latest = st.latest_scans(visit_id)
        scans = st.list_scans(visit_id)
    except StoreError as exc:
        abort_store(exc)
    return {"visit": visit, "patient": patient, "easi": result, "latest": latest,
            "scans": scans, "age": st.visit_age(visit)}


def patient_view(patient_id: str) -> tuple[Any, list[dict[str, Any]]]:
    """The patient and their visit history, for the patient page and /api/patients/<id>."""
    st = store()
    try:
        return st.get_patient(patient_id), st.patient_history(patient_id)
    except StoreError as exc:
        abort_store(exc)


def sign_changes(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sign's mean grade at the first and latest visit that has it, and the change."""
    rows = []
    for sign in EASI_SIGNS:
        values = [(h["date"], h["sign_means"].get(sign.value)) for h in history]
        values = [(d, v) for d, v in values if v is not None]
        if not values:
            rows.append({"sign": sign, "first": None, "last": None, "change": None})
            continue
        (d0, v0), (d1, v1) = values[0], values[-1]
        rows.append({"sign": sign, "first": v0, "first_date": d0, "last": v1, "last_date": d1,
                     "change": round(v1 - v0, 2) if len(values) > 1 else None})
    return rows


@bp.route("/patients", methods=["GET", "POST"])
@roles_required(Role.STAFF)
def patients() -> Any:
    if request.method == "POST":
        patient = create_patient(request.form.get("patient_id", ""), request.form.get("birth_year"))
        flash(f"Patient {patient.id} created.", "info")
        if request.form.get("then") == "scan":
            return redirect(url_for("scan.scan_page", patient=patient.id))
        return redirect(url_for("visits.patient_page", patient_id=patient.id))
    search = request.args.get("q", "").strip()
    rows = store().list_patients(search or None)
    return render_template("patients.html", nav="patients", patients=rows, q=search)


@bp.route("/patients/<patient_id>")
@roles_required(Role.STAFF)
def patient_page(patient_id: str) -> Any:
    patient, history = patient_view(patient_id)
    chart = trend_chart([Point(h["date"], h["easi"]) for h in history])
    return render_template("patient.html", nav="patients", patient=patient, history=history,
                           chart=chart, changes=sign_changes(history), MODEL_SIGNS=MODEL_SIGNS,
                           EASI_SIGNS=EASI_SIGNS)


@bp.route("/visits/<int:visit_id>")
@roles_required(Role.STAFF)
def visit_page(visit_id: int) -> Any:
    view = visit_view(visit_id)
    return render_template("visit.html", nav="patients", regions=REGIONS, MODEL_SIGNS=MODEL_SIGNS,
                           EASI_SIGNS=EASI_SIGNS, Sign=Sign, **view)


@bp.route("/visits/<int:visit_id>/regions/<region>/clear", methods=["POST"])
@roles_required(Role.STAFF)
def clear_region(visit_id: int, region: str) -> Any:
    """Record a region as examined with 0 % area (nothing to scan there)."""
    record_clear_region(visit_id, region)
    return redirect(url_for("visits.visit_page", visit_id=visit_id))


def record_clear_region(visit_id: int, region_name: str) -> Any:
    try:
        region = parse_region(region_name)
    except ValueError as exc:
        abort(404, description=str(exc))
    user = current_user()
    st = store()
    try:
        scan = st.save_region_scan(visit_id, region)
        return st.set_clinician_entries(scan.id, area_percent=0, user=user.username)
    except StoreError as exc:
        abort_store(exc)


@bp.route("/visits/<int:visit_id>/status", methods=["POST"])
@roles_required(Role.STAFF)
def visit_status(visit_id: int) -> Any:
    set_status(visit_id, request.form.get("status", ""))
    return redirect(url_for("visits.visit_page", visit_id=visit_id))


def set_status(visit_id: int, value: str) -> Any:
    try:
        status = VisitStatus(value)
    except ValueError:
        abort(400, description=f"status {value!r}: use open or closed")
    try:
        return store().set_visit_status(visit_id, status)
    except StoreError as exc:
        abort_store(exc)


def export_response(visit_id: int, fmt: str) -> Response:
    try:
        record = store().visit_record(visit_id)
    except StoreError as exc:
        abort_store(exc)
    stem = f"visit-{visit_id}-{record.patient.id}-{record.visit.date}"
    if fmt == "csv":
        body, mime, name = visit_csv(record), "text/csv", f"{stem}.csv"
    elif fmt == "json":
        body = json.dumps(record.to_dict(), indent=2)
        mime, name = "application/json", f"{stem}.json"
    elif fmt == "fhir":
        body = json.dumps(visit_bundle(record), indent=2)
        mime, name = "application/fhir+json", f"{stem}.fhir.json"
    else:
        abort(404, description=f"unknown export format {fmt!r}: use {', '.join(EXPORT_FORMATS)}")
    log.info("%s exported visit %s as %s", current_user().username, visit_id, fmt)
    return Response(body, mimetype=mime,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/visits/<int:visit_id>/export.<fmt>")
@roles_required(Role.STAFF)
def export(visit_id: int, fmt: str) -> Response:
    return export_response(visit_id, fmt)


@bp.route("/scans/<int:scan_id>/image")
@roles_required(Role.STAFF)
def scan_image(scan_id: int) -> Any:
    st = store()
    try:
        scan = st.get_scan(scan_id)
    except StoreError as exc:
        abort_store(exc)
    path = st.image_file(scan)
    if path is None:
        from device.web.scan import cached_crop

        data = cached_crop(scan_id)
        if data is None:
            abort(404, description=f"scan {scan_id} has no stored image (keep_images is off, "
                                   "or it was purged)")
        return Response(data, mimetype="image/jpeg")
    return send_file(path, mimetype="image/jpeg" if path.suffix == ".jpg" else None)
