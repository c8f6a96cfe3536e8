"""Following a lesion on the dashboard (Flask test client, fake models): start a lesion
from a scan, aim at it with its last photo over the preview, a follow-up whose crop is
found again by registration, one that is refused (another patient's skin) and says so,
the timeline page with its chart, and the exports carrying the lesion."""

from __future__ import annotations

import io
import json

import pytest
from web_support import logged_in, make_app

from device.core.imageio import encode_png
from device.tools.visit_synth import render_followup
from device.web.users import Role


@pytest.fixture(scope="module")
def photos():
    return [p.frame for p in render_followup(11, 3, width=480, height=360)], \
        render_followup(99, 2, width=480, height=360)[1].frame


def _capture(client, token, frame, lesion=None, region="upper_limbs"):
    data = {"csrf_token": token, "patient": "P1", "region": region,
            "image": (io.BytesIO(encode_png(frame)), "photo.png")}
    if lesion:
        data["lesion"] = str(lesion)
    resp = client.post("/scan/capture", data=data, content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)[:1500]
    scan_id = int(resp.location.rsplit("/", 1)[1])
    page = client.get(resp.location).get_data(as_text=True)
    return scan_id, page


def _close_visit(client, token, store, scan_id):
    visit_id = store.get_scan(scan_id).visit_id
    client.post(f"/visits/{visit_id}/status", data={"csrf_token": token, "status": "closed"})


def test_one_lesion_over_three_visits(tmp_path, photos):
    frames, stranger = photos
    app = make_app(tmp_path)
    store = app.config["TEST_STORE"]
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "1990"})

    first, _ = _capture(client, token, frames[0])
    resp = client.post(f"/scans/{first}/lesion", data={
        "csrf_token": token, "site": "left antecubital fossa", "label": "L elbow"})
    assert resp.status_code == 302
    lesion = store.get_scan(first).lesion_id
    assert lesion is not None and store.get_lesion(lesion).first_visit_id == \
        store.get_scan(first).visit_id
    _close_visit(client, token, store, first)

    aim = client.get(f"/scan?patient=P1&lesion={lesion}").get_data(as_text=True)
    assert 'id="ghost"' in aim and "Following" in aim
    last = client.get(f"/lesions/{lesion}/last.jpg")
    assert last.status_code == 200 and last.data[:3] == b"\xff\xd8\xff"

    # a follow-up: the crop is found again, and the region follows the lesion
    second, page = _capture(client, token, frames[1], lesion, region="trunk")
    scan = store.get_scan(second)
    assert scan.lesion_id == lesion and scan.crop_mode == "registered"
    assert scan.region.value == "upper_limbs"
    assert "Found the lesion of the last visit" in page
    _close_visit(client, token, store, second)

    # another patient's skin: registration refuses, the auto crop is used and it says so
    refused, page = _capture(client, token, stranger, lesion)
    assert store.get_scan(refused).crop_mode != "registered"
    assert "Could not find the lesion of the last visit" in page and "auto crop" in page
    client.post(f"/scan/result/{refused}/save", data={
        "csrf_token": token, "erythema": "3", "excoriation": "0", "lichenification": "0"})

    timeline = client.get(f"/lesions/{lesion}").get_data(as_text=True)
    assert timeline.count("<figure>") == 3 and "<svg" in timeline and "Grades of L elbow" in timeline
    assert 'data-marked="1"' in timeline  # erythema moved by a whole grade or more

    visit_id = store.get_scan(refused).visit_id
    csv_text = client.get(f"/visits/{visit_id}/export.csv").get_data(as_text=True)
    assert "lesion_site" in csv_text.splitlines()[0] and "left antecubital fossa" in csv_text
    bundle = json.loads(client.get(f"/visits/{visit_id}/export.fhir").get_data(as_text=True))
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert "BodyStructure" in kinds
    region_obs = [e["resource"] for e in bundle["entry"]
                  if e["resource"].get("focus")]
    assert region_obs and "left antecubital fossa" in region_obs[0]["bodySite"]["text"]


def test_a_lesion_of_another_patient_is_refused(tmp_path, photos):
    app = make_app(tmp_path)
    store = app.config["TEST_STORE"]
    client, token = logged_in(app, Role.STAFF)
    for pid in ("P1", "P2"):
        client.post("/patients", data={"csrf_token": token, "patient_id": pid, "birth_year": "1990"})
    other = store.create_lesion("P2", "trunk", "back")
    resp = client.post("/scan/capture", data={
        "csrf_token": token, "patient": "P1", "region": "trunk", "lesion": str(other.id),
        "image": (io.BytesIO(encode_png(photos[0][0])), "p.png")}, content_type="multipart/form-data")
    assert resp.status_code == 400 and "another patient" in resp.get_data(as_text=True)
