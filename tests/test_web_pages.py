"""Dashboard pages and API with the test client: scan, review, visit summary, history,
exports (CSV, JSON, FHIR R4 validated with fhir.resources), status."""

from __future__ import annotations

import csv
import io
import json
import logging
import re

import pytest
from web_support import capture_from_preview, logged_in, make_app

from device.core.vocab import Region, Sign
from device.web import fhir, svg, sysinfo
from device.web.status import SYNTHETIC_LABEL
from device.web.users import Role


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def staff(app):
    return logged_in(app, Role.STAFF)


def _complete_visit(app, client, token):
    """P001 (born 1990): trunk scanned and reviewed, the other three regions clear."""
    client.post("/patients", data={"csrf_token": token, "patient_id": "P001", "birth_year": "1990"})
    scan_id = capture_from_preview(client, token)
    resp = client.post(f"/scan/result/{scan_id}/save", data={
        "csrf_token": token, "erythema": "3", "excoriation": "1", "lichenification": "1",
        "papulation": "1.5", "area_percent": "25"})
    assert resp.status_code == 302
    visit_id = int(resp.location.rsplit("/", 1)[1])
    for region in (Region.HEAD_NECK, Region.UPPER_LIMBS, Region.LOWER_LIMBS):
        resp = client.post(f"/visits/{visit_id}/regions/{region.value}/clear",
                           data={"csrf_token": token})
        assert resp.status_code == 302
    return scan_id, visit_id


def test_scan_review_save_and_summary(app, staff):
    client, token = staff
    store = app.config["TEST_STORE"]
    page = client.get("/scan").get_data(as_text=True)
    assert "Choose or create a patient first" in page and 'id="guide-rect"' in page
    client.post("/patients", data={"csrf_token": token, "patient_id": "P001", "birth_year": "1990"})
    scan_id = capture_from_preview(client, token)
    result = client.get(f"/scan/result/{scan_id}").get_data(as_text=True)
    # the three grades with bars, the review flag (excoriation is unsure), the crop
    assert 'id="review-flag"' in result
    for sign in ("erythema", "excoriation", "lichenification"):
        assert f'id="sign-{sign}"' in result
    assert "width: 80.0%" in result  # erythema's top probability bar
    assert f"/scans/{scan_id}/image" in result
    image = client.get(f"/scans/{scan_id}/image")
    assert image.status_code == 200 and image.data[:8] == b"\x89PNG\r\n\x1a\n"  # lossless crop

    resp = client.post(f"/scan/result/{scan_id}/save", data={
        "csrf_token": token, "erythema": "3", "excoriation": "1", "lichenification": "1",
        "papulation": "1.5", "area_percent": "25"})
    scan = store.get_scan(scan_id)
    assert scan.final_grades[Sign.ERYTHEMA] == 3 and scan.model_grades[Sign.ERYTHEMA] == 2
    assert scan.overrides[Sign.ERYTHEMA].user == "staff"
    assert Sign.LICHENIFICATION not in scan.overrides  # unchanged grade: no override recorded
    assert scan.papulation == 1.5 and scan.area_percent == 25 and scan.clinician_by == "staff"
    summary = client.get(resp.location).get_data(as_text=True)
    assert 'id="missing"' in summary and "Head and neck: not examined" in summary
    assert "EASI —" in summary


def test_complete_visit_shows_easi_and_band(app, staff):
    client, token = staff
    _, visit_id = _complete_visit(app, client, token)
    html = client.get(f"/visits/{visit_id}").get_data(as_text=True)
    # trunk: weight 0.3 x intensity (3 + 1.5 + 1 + 1) x area score 2 (25 %) = 3.9: mild
    assert re.search(r'id="easi-total">EASI 3.9<', html)
    assert re.search(r'id="easi-band">Mild<', html)
    assert 'id="missing"' not in html
    api = client.get(f"/api/visits/{visit_id}").get_json()
    assert api["easi"]["total"] == pytest.approx(3.9) and api["easi"]["band"] == "mild"
    assert set(api["latest"]) == {r.value for r in Region}


def test_bad_review_values_are_refused(app, staff):
    client, token = staff
    client.post("/patients", data={"csrf_token": token, "patient_id": "P001", "birth_year": "1990"})
    scan_id = capture_from_preview(client, token)
    for field, value, message in [("erythema", "0.5", "0.5 is not an EASI grade"),
                                  ("area_percent", "140", "outside 0-100"),
                                  ("papulation", "lots", "not a number")]:
        resp = client.post(f"/scan/result/{scan_id}/save", data={"csrf_token": token, field: value})
        assert resp.status_code == 400
        assert message in resp.get_data(as_text=True)
    scan = app.config["TEST_STORE"].get_scan(scan_id)
    assert scan.final_grades[Sign.ERYTHEMA] == 2 and scan.area_percent is None


def test_capture_needs_patient_and_region(app, staff):
    client, token = staff
    resp = client.post("/scan/capture", data={"csrf_token": token, "region": "trunk"})
    assert resp.status_code == 400 and "Choose a patient" in resp.get_data(as_text=True)
    resp = client.post("/scan/capture", data={"csrf_token": token, "patient": "nobody",
                                              "region": "trunk"})
    assert resp.status_code == 400
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": ""})
    resp = client.post("/scan/capture", data={"csrf_token": token, "patient": "P1",
                                              "region": "elbow"})
    assert resp.status_code == 400 and "unknown body region" in resp.get_data(as_text=True)


def test_bad_photo_quality_asks_for_retake_and_saves_nothing(app, staff, tmp_path):
    import cv2
    import numpy as np

    client, token = staff
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "1990"})
    dark = np.full((300, 400, 3), 10, np.uint8)
    ok, buf = cv2.imencode(".png", dark)
    resp = client.post("/scan/capture", data={"csrf_token": token, "patient": "P1",
                                              "region": "trunk",
                                              "image": (io.BytesIO(buf.tobytes()), "dark.png")},
                       content_type="multipart/form-data")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'id="retake"' in html and "dark" in html.lower()
    assert app.config["TEST_STORE"].list_scans(1) == []


def test_no_models_gives_503(tmp_path):
    app = make_app(tmp_path, models=None)
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "1990"})
    resp = client.post("/scan/capture", data={"csrf_token": token, "patient": "P1",
                                              "region": "trunk"})
    assert resp.status_code == 503 and "no model pack" in resp.get_data(as_text=True)


def test_api_mirrors_pages(app, staff):
    client, token = staff
    h = {"X-CSRFToken": token}
    assert client.post("/api/patients", json={"patient_id": "A1", "birth_year": 2020},
                       headers=h).status_code == 201
    assert client.post("/api/patients", json={"patient_id": "A1"}, headers=h).status_code == 400
    assert client.get("/api/patients?q=A").get_json()["patients"][0]["id"] == "A1"
    visit = client.post("/api/patients/A1/visits", headers=h).get_json()
    assert client.get("/api/patients/A1/visits").get_json()["visits"][0]["id"] == visit["id"]
    assert client.get("/api/patients/nobody/visits").status_code == 404
    # grade only (no patient): nothing saved
    resp = client.post("/api/scan", json={}, headers=h)
    assert resp.status_code == 200 and resp.get_json()["saved"] is False
    assert resp.get_json()["result"]["grades"]["erythema"]["grade"] == 2
    # grade and save
    resp = client.post("/api/scan", json={"patient_id": "A1", "region": "head_neck"}, headers=h)
    assert resp.status_code == 201
    scan_id = resp.get_json()["scan"]["id"]
    resp = client.post(f"/api/scans/{scan_id}/review", headers=h,
                       json={"excoriation": 2.5, "papulation": 1, "area_percent": 50})
    body = resp.get_json()
    assert resp.status_code == 200 and body["scan"]["final_grades"]["excoriation"] == 2.5
    assert body["scan"]["overrides"]["excoriation"]["user"] == "staff"
    assert {c["field"] for c in body["changes"]} == {"excoriation", "papulation", "area_percent"}
    assert client.post(f"/api/scans/{scan_id}/review", json={"colour": 1},
                       headers=h).status_code == 400
    assert client.get(f"/api/scans/{scan_id}").get_json()["details"]["review"] is True
    for region in ("upper_limbs", "trunk", "lower_limbs"):
        resp = client.post(f"/api/visits/{visit['id']}/regions/{region}/clear", headers=h)
        assert resp.status_code == 201
    easi = client.get(f"/api/visits/{visit['id']}").get_json()["easi"]
    # child (born 2020): head weight 0.2 x (2 + 1 + 2.5 + 1) x area score 4 (50 %) = 5.2
    assert easi["complete"] and easi["total"] == pytest.approx(5.2) and easi["child_weights"]
    resp = client.post(f"/api/visits/{visit['id']}/status", json={"status": "closed"}, headers=h)
    assert resp.get_json()["status"] == "closed"
    resp = client.post(f"/api/scans/{scan_id}/review", json={"erythema": 1}, headers=h)
    assert resp.status_code == 400 and "closed" in resp.get_json()["error"]
    hist = client.get("/api/patients/A1").get_json()
    assert hist["history"][0]["easi"] == pytest.approx(5.2)
    assert set(hist["history"][0]) == {  # the JSON shape of API.md, from VisitHistory.to_dict
        "visit_id", "date", "status", "easi", "easi_display", "band", "complete", "missing",
        "sign_means", "colour_checked", "colour_corrected"}
    assert hist["history"][0]["band"] == "mild" and hist["history"][0]["status"] == "closed"
    assert [c["sign"] for c in hist["sign_changes"]][0] == "erythema"
    assert hist["sign_changes"][0]["first"] == hist["sign_changes"][0]["last"] is not None
    me = client.get("/api/me").get_json()
    assert me["username"] == "staff" and me["role"] == "staff"


def test_exports_csv_json_fhir(app, staff):
    from fhir.resources.R4B.bundle import Bundle

    client, token = staff
    _, visit_id = _complete_visit(app, client, token)
    resp = client.get(f"/visits/{visit_id}/export.csv")
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["region"] for r in rows] == [r.value for r in Region] + ["total"]
    trunk = rows[2]
    assert trunk["erythema_model"] == "2" and trunk["erythema"] == "3.0"
    assert trunk["erythema_override_by"] == "staff" and float(trunk["region_score"]) == 3.9
    assert rows[-1]["easi_total"] == "3.9" and rows[-1]["easi_band"] == "mild"

    data = json.loads(client.get(f"/visits/{visit_id}/export.json").data)
    assert data["easi"]["total"] == pytest.approx(3.9) and len(data["scans"]) == 4

    resp = client.get(f"/api/visits/{visit_id}/export.fhir")
    assert resp.mimetype == "application/fhir+json"
    raw = json.loads(resp.data)
    bundle = Bundle.model_validate(raw)  # raises on any R4 structure error
    kinds = [e.resource.__resource_type__ for e in bundle.entry]
    assert kinds == ["Patient"] + ["Observation"] * 5
    total = raw["entry"][1]["resource"]
    assert total["valueQuantity"]["value"] == pytest.approx(3.9)
    assert total["interpretation"][0]["text"] == "Mild" and len(total["hasMember"]) == 4
    trunk_obs = next(e["resource"] for e in raw["entry"] if e["resource"].get("bodySite", {})
                     .get("text") == "Trunk")
    comps = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"]
             for c in trunk_obs["component"]}
    assert comps["erythema"] == 3 and comps["papulation"] == 1.5 and comps["area-percent"] == 25
    assert raw["entry"][0]["resource"]["birthDate"] == "1990"
    assert client.get(f"/visits/{visit_id}/export.xml").status_code == 404
    assert client.get("/visits/999/export.csv").status_code == 404


def test_fhir_bundle_of_incomplete_visit_validates(app, staff):
    from fhir.resources.R4B.bundle import Bundle

    client, token = staff
    client.post("/patients", data={"csrf_token": token, "patient_id": "P2", "birth_year": ""})
    capture_from_preview(client, token, patient="P2")
    raw = fhir.visit_bundle(app.config["TEST_STORE"].visit_record(1))
    Bundle.model_validate(raw)
    total = raw["entry"][1]["resource"]
    assert total["status"] == "preliminary" and "valueQuantity" not in total
    assert "patient age" in total["dataAbsentReason"]["text"]


def test_patient_history_chart_and_sign_changes(app, staff):
    client, token = staff
    _complete_visit(app, client, token)
    html = client.get("/patients/P001").get_data(as_text=True)
    assert "<svg" in html and "EASI 3.9" in html  # the dot's tooltip
    assert "Change per sign" in html
    assert client.get("/patients/nobody").status_code == 404
    listing = client.get("/patients?q=P0").get_data(as_text=True)
    assert "/patients/P001" in listing


def test_svg_chart_scales_to_band_edges():
    chart = svg.trend_chart([svg.Point("2025-01-01", 3.2), svg.Point("2025-02-01", None),
                             svg.Point("2025-03-01", 12.5)])
    assert chart.startswith("<svg") and chart.endswith("</svg>")
    assert ">21</text>" in chart and ">50</text>" not in chart  # axis up to the next band edge
    assert "incomplete visit" in chart and chart.count('class="dot"') == 2
    assert 'class="line"' in chart
    assert svg.axis_max([60]) == 72 and svg.axis_max([]) == 7
    evil = svg.trend_chart([svg.Point("<script>", 1.0)])
    assert "<script>" not in evil


def test_status_page_and_api(app):
    client, _ = logged_in(app, Role.TECHNICIAN)
    logging.getLogger("device.test").warning("camera cable loose (test)")
    data = client.get("/api/status").get_json()
    assert data["software_version"] and data["pack"]["version"] == "2025.1.0"
    ery = data["pack"]["models"]["erythema"]
    assert ery["backbone"] == "mobilenet_v2" and ery["quantization"] == "int8"
    assert ery["held_out"]["accuracy"] == 0.912 and ery["figures_label"] == SYNTHETIC_LABEL
    assert data["camera"]["source"] == "folder"
    assert any("camera cable loose" in e["message"] for e in data["errors"])
    assert data["disk"]["free_gb"] > 0 and "process" in data["uptime_s"]
    html = client.get("/status").get_data(as_text=True)
    assert "measured on synthetic data" in html and "clinical accuracy" in html
    assert "91.2 %" in html and "camera cable loose" in html
    assert "clinical accuracy:" not in html.lower()


def test_status_real_data_label_and_na_temperature(tmp_path, monkeypatch):
    from web_support import fake_models

    app = make_app(tmp_path, models=fake_models(synthetic=False))
    monkeypatch.setattr(sysinfo, "THERMAL_ROOT", tmp_path / "no-thermal")
    monkeypatch.setattr(sysinfo.cpu_temperature_c, "__defaults__", (tmp_path / "no-thermal",))
    client, _ = logged_in(app, Role.TECHNICIAN)
    data = client.get("/api/status").get_json()
    assert data["cpu_temperature_c"] is None
    label = data["pack"]["models"]["erythema"]["figures_label"]
    assert "clinic A" in label and "not a clinical validation" in label
    assert "CPU temperature</dt><dd>n/a" in client.get("/status").get_data(as_text=True)


def test_sysinfo_reads_thermal_zones(tmp_path):
    for i, milli in enumerate(["48312", "51200", "junk"]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "temp").write_text(milli + "\n")
    assert sysinfo.cpu_temperature_c(tmp_path) == 51.2
    assert sysinfo.format_duration(90061) == "1 d 1 h 1 min"
    assert sysinfo.format_duration(None) == "n/a"
