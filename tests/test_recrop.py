"""The recrop (moving the crop square after Capture): the same frame graded again inside
the moved box, through the JSON API and the page form, recorded as moved and by whom; no new
photo taken; overrides kept; bad boxes and lost frames refused clearly."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from store_support import drop_column, make_older
from web_support import fake_card, logged_in, make_app

from device.cameras import render_skin_frame
from device.core.vocab import MODEL_SIGNS, Sign
from device.grading.models import ModelSet, SignModel
from device.store import Store
from device.store.schema import SCHEMA_VERSION, V3_COLUMNS
from device.web.users import Role


class RednessModel:
    """Grades by the crop's redness (mean R - G): 3 on the lesion, 0 on plain skin."""

    input_size = (32, 32)

    def predict(self, image: np.ndarray) -> np.ndarray:
        redness = float(image[..., 0].astype(int).mean() - image[..., 1].astype(int).mean())
        grade = 3 if redness > 55 else 0
        probs = np.full(4, 0.02, np.float32)
        probs[grade] = 0.94
        return probs


@pytest.fixture
def app(tmp_path):
    from pathlib import Path

    models = ModelSet({s: SignModel(s, RednessModel(), fake_card(s), Path(f"/x/{s.value}"))
                       for s in MODEL_SIGNS}, pack_version="2025.2.0")
    app = make_app(tmp_path, models=models)
    app.config["TEST_CONFIG"] = app.extensions["atopiscan"].config
    return app


@pytest.fixture
def staff(app):
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "2019"})
    return client, token


def _lesion_photo():
    rng = np.random.default_rng(7)
    while True:  # a lesion away from the centre, so the guide square misses part of it
        frame, box = render_skin_frame(rng, 640, 480)
        x, y, side, _ = box
        if x + side < 330 or x > 330:
            return frame, box


def _capture(client, token, frame):
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    resp = client.post("/scan/capture", data={
        "csrf_token": token, "patient": "P1", "region": "trunk",
        "image": (io.BytesIO(buf.tobytes()), "photo.png")}, content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)[:1500]
    return int(resp.location.rsplit("/", 1)[1])


def _plain_skin_box(lesion, width=640, height=480, side=120):
    lx, ly, ls, _ = lesion
    for x in range(0, width - side, 20):
        for y in range(0, height - side, 20):
            if x + side + 40 < lx or x > lx + ls + 40 or y + side + 40 < ly or y > ly + ls + 40:
                return [x, y, side, side]
    raise AssertionError("no plain skin")


def _recrop(client, token, scan_id, box, verb="recrop"):
    return client.post(f"/api/scans/{scan_id}/{verb}", json={"box": box},
                       headers={"X-CSRFToken": token})


def test_recropping_through_the_api(app, staff):
    client, token = staff
    store = app.config["TEST_STORE"]
    camera = app.extensions["atopiscan"].service.camera
    frame, lesion = _lesion_photo()
    scan_id = _capture(client, token, frame)
    reads = camera.status.frames

    # onto plain skin: the same photo graded inside that square
    skin = _plain_skin_box(lesion)
    resp = _recrop(client, token, scan_id, skin)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["result"]["crop"]["box"] == skin and body["result"]["crop"]["mode"] == "box"
    scan = store.get_scan(scan_id)
    assert scan.crop_mode == "moved" and scan.crop_by == "staff" and scan.crop_box == tuple(skin)
    assert scan.model_grades[Sign.ERYTHEMA] == 0 and scan.final_grades[Sign.ERYTHEMA] == 0
    crop = cv2.imread(str(store.data_dir / scan.image_path))[..., ::-1]
    x, y, w, h = skin
    assert np.array_equal(crop, frame[y:y + h, x:x + w])  # exactly that square of that frame

    # onto the lesion: graded again, as often as staff like
    x, y, side, _ = lesion
    core = [x + side // 4, y + side // 4, side // 2, side // 2]
    scan = store.get_scan(_recrop(client, token, scan_id, core).get_json()["scan"]["id"])
    assert scan.model_grades[Sign.ERYTHEMA] == 3 and scan.crop_box == tuple(core)
    assert camera.status.frames == reads  # no new photo was taken
    changes = [c for c in store.grade_changes(scan_id)
               if c["field"] == "erythema (model, recrop)"]
    assert (changes[-1]["old"], changes[-1]["new"], changes[-1]["user"]) == (0, 3, "staff")


def test_an_override_survives_a_recrop_through_the_old_url(app, staff):
    client, token = staff
    store = app.config["TEST_STORE"]
    frame, lesion = _lesion_photo()
    scan_id = _capture(client, token, frame)
    client.post(f"/api/scans/{scan_id}/review", json={"erythema": 1.5},
                headers={"X-CSRFToken": token})
    x, y, side, _ = lesion
    resp = _recrop(client, token, scan_id, [x + side // 4, y + side // 4, side // 2, side // 2],
                   verb="regrade")  # the API's name before issue 22, kept as an alias
    assert resp.status_code == 200, resp.get_json()
    scan = store.get_scan(scan_id)
    assert scan.model_grades[Sign.ERYTHEMA] == 3
    assert scan.final_grades[Sign.ERYTHEMA] == 1.5 and scan.overrides[Sign.ERYTHEMA].user == "staff"
    assert scan.final_grades[Sign.EXCORIATION] == scan.model_grades[Sign.EXCORIATION]


def test_the_result_page_form_recrops_and_says_who_moved_it(app, staff):
    client, token = staff
    frame, lesion = _lesion_photo()
    scan_id = _capture(client, token, frame)
    page = client.get(f"/scan/result/{scan_id}").get_data(as_text=True)
    assert 'id="frame-box"' in page and 'id="recrop"' in page and "Crop: guide" in page
    photo = client.get(f"/scan/result/{scan_id}/frame.jpg")
    assert photo.status_code == 200 and photo.data[:3] == b"\xff\xd8\xff"
    box = _plain_skin_box(lesion)
    resp = client.post(f"/scan/result/{scan_id}/recrop", data={
        "csrf_token": token, **{f"box_{k}": v for k, v in zip("xywh", box, strict=True)}})
    assert resp.status_code == 302
    page = client.get(resp.location).get_data(as_text=True)
    assert "Crop: moved by staff" in page and "Graded the square you moved" in page


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"box": [5000, 5000, 50, 50]}, 400, "outside"),
    ({"box": [10, 10, 0, 40]}, 400, "no area"),
    ({"box": [1, 2, 3]}, 400, "four numbers"),
    ({"box": ["a", 2, 3, 4]}, 400, "not four numbers"),
    ({"square": [1, 2, 3, 4]}, 400, "unknown field; use box"),
])
def test_bad_boxes_are_refused_and_change_nothing(app, staff, body, status, words):
    client, token = staff
    frame, _ = _lesion_photo()
    scan_id = _capture(client, token, frame)
    before = app.config["TEST_STORE"].get_scan(scan_id)
    resp = client.post(f"/api/scans/{scan_id}/recrop", json=body, headers={"X-CSRFToken": token})
    assert resp.status_code == status and words in resp.get_json()["error"]
    assert app.config["TEST_STORE"].get_scan(scan_id) == before


def test_the_kept_frame_serves_after_a_restart_and_a_lost_one_is_404(app, staff):
    client, token = staff
    store = app.config["TEST_STORE"]
    frame, lesion = _lesion_photo()
    scan_id = _capture(client, token, frame)
    app.extensions["atopiscan"].scans.forget()  # as after a restart: nothing in memory
    assert _recrop(client, token, scan_id, _plain_skin_box(lesion)).status_code == 200
    app.extensions["atopiscan"].scans.forget()
    (store.data_dir / store.get_scan(scan_id).frame_path).unlink()
    resp = _recrop(client, token, scan_id, _plain_skin_box(lesion))
    assert resp.status_code == 404 and "capture the region again" in resp.get_json()["error"]
    assert 'id="frame-box"' not in client.get(f"/scan/result/{scan_id}").get_data(as_text=True)
    assert _recrop(client, token, 999, [1, 1, 50, 50]).status_code == 404


def test_recrop_needs_staff_and_csrf(app, staff):
    client, token = staff
    frame, lesion = _lesion_photo()
    scan_id = _capture(client, token, frame)
    assert client.post(f"/api/scans/{scan_id}/recrop", json={"box": [1, 1, 50, 50]}
                       ).status_code == 400  # no CSRF header
    tech, tech_token = logged_in(app, Role.TECHNICIAN)
    assert _recrop(tech, tech_token, scan_id, [1, 1, 50, 50]).status_code == 403
    assert app.test_client().post(f"/api/scans/{scan_id}/recrop",
                                  json={"box": [1, 1, 50, 50]}).status_code in (400, 401)


def test_a_schema_2_database_gains_the_crop_columns(tmp_path):
    s = Store(tmp_path)
    s.close()
    make_older(tmp_path, 2, *(drop_column(name) for name, _ in V3_COLUMNS))
    s = Store(tmp_path)
    cols = {r[1] for r in s._conn().execute("PRAGMA table_info(region_scans)")}
    assert {"crop_by", "crop_at"} <= cols
    assert s._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    s.close()
