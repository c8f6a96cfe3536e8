"""The dashboard shows whether a scan was colour-corrected: the result page, the visit
summary and the patient's visit history."""

from __future__ import annotations

import cv2
import numpy as np
from web_support import capture_from_preview, csrf_token, login, make_app

from device.cameras import render_skin_frame
from device.colour.card import CardKind
from device.colour.scene import Light, capture, place_card, random_crosstalk
from device.web.users import Role


def write_card_frames(folder, n=2):
    folder.mkdir(parents=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        frame, box = render_skin_frame(rng, 480, 360)
        frame, _ = place_card(rng, frame, CardKind.CHART, box)
        photo = capture(rng, frame, Light(3200, 0.0, random_crosstalk(rng)))
        cv2.imwrite(str(folder / f"frame{i:02d}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))


def test_a_colour_corrected_scan_says_so_on_every_page(tmp_path):
    write_card_frames(tmp_path / "frames")
    app = make_app(tmp_path)
    client = app.test_client()
    login(client, Role.STAFF.value)
    token = csrf_token(client)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P001",
                                   "birth_year": "1990"})
    scan_id = capture_from_preview(client, token)
    scan = app.config["TEST_STORE"].get_scan(scan_id)
    assert scan.colour is not None and scan.colour_corrected
    page = client.get(f"/scan/result/{scan_id}").get_data(as_text=True)
    assert 'id="colour-info"' in page and "Colour corrected" in page
    assert "24-patch chart, residual" in page
    visit = client.get(f"/visits/{scan.visit_id}").get_data(as_text=True)
    assert "colour corrected" in visit
    history = client.get("/patients/P001").get_data(as_text=True)
    assert "1/1 corrected" in history
    data = client.get(f"/api/visits/{scan.visit_id}").get_json()
    assert data["scans"][0]["colour"]["status"] == "corrected"
