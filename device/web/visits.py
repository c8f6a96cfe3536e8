"""Patients, visit summaries, patient history and exports (staff pages)."""

from __future__ import annotations

import json
import logging

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
from flask.typing import ResponseReturnValue

from device import actions
from device.core.easi import EASI_SIGNS
from device.core.vocab import MODEL_SIGNS, REGIONS, Sign
from device.store.schema import StoreError
from device.web.auth import current_user, roles_required
from device.web.common import abort_store, actor, scans, store
from device.web.exports import visit_csv
from device.web.fhir import visit_bundle
from device.web.svg import Point, trend_chart
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("visits", __name__)

EXPORT_FORMATS = ("csv", "json", "fhir")


@bp.route("/patients", methods=["GET", "POST"])
@roles_required(Role.STAFF)
def patients() -> ResponseReturnValue:
    if request.method == "POST":
        patient = actions.create_patient(store(), request.form.get("patient_id", ""),
                                         request.form.get("birth_year"))
        flash(f"Patient {patient.id} created.", "info")
        if request.form.get("then") == "scan":
            return redirect(url_for("scan.scan_page", patient=patient.id))
        return redirect(url_for("visits.patient_page", patient_id=patient.id))
    search = request.args.get("q", "").strip()
    rows = store().list_patients(search or None)
    return render_template("patients.html", nav="patients", patients=rows, q=search)


@bp.route("/patients/<patient_id>")
@roles_required(Role.STAFF)
def patient_page(patient_id: str) -> ResponseReturnValue:
    patient, history = actions.patient_view(store(), patient_id)
    chart = trend_chart([Point(h.date, h.easi) for h in history])
    return render_template("patient.html", nav="patients", patient=patient, history=history,
                           lesions=store().list_lesions(patient_id),
                           chart=chart, changes=actions.sign_changes(history), MODEL_SIGNS=MODEL_SIGNS,
                           EASI_SIGNS=EASI_SIGNS)


@bp.route("/visits/<int:visit_id>")
@roles_required(Role.STAFF)
def visit_page(visit_id: int) -> ResponseReturnValue:
    view = actions.visit_view(store(), visit_id)
    return render_template("visit.html", nav="patients", regions=REGIONS, MODEL_SIGNS=MODEL_SIGNS,
                           EASI_SIGNS=EASI_SIGNS, Sign=Sign, **view.parts())


@bp.route("/visits/<int:visit_id>/regions/<region>/clear", methods=["POST"])
@roles_required(Role.STAFF)
def clear_region(visit_id: int, region: str) -> ResponseReturnValue:
    """Record a region as examined with 0 % area (nothing to scan there)."""
    actions.clear_region(store(), visit_id, region, actor())
    return redirect(url_for("visits.visit_page", visit_id=visit_id))


@bp.route("/visits/<int:visit_id>/status", methods=["POST"])
@roles_required(Role.STAFF)
def visit_status(visit_id: int) -> ResponseReturnValue:
    actions.set_visit_status(store(), visit_id, request.form.get("status", ""))
    return redirect(url_for("visits.visit_page", visit_id=visit_id))


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
def scan_image(scan_id: int) -> ResponseReturnValue:
    st = store()
    try:
        scan = st.get_scan(scan_id)
    except StoreError as exc:
        abort_store(exc)
    path = st.image_file(scan)
    if path is None:
        data = scans().crop(scan_id)
        if data is None:
            abort(404, description=f"scan {scan_id} has no stored image (keep_images is off, "
                                   "or it was purged)")
        return Response(data, mimetype="image/jpeg")
    return send_file(path, mimetype="image/jpeg" if path.suffix == ".jpg" else None)
