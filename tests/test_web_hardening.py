"""Issue 16: answers the dashboard gives to what a hostile-but-fair test sends it."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from web_support import logged_in, make_app

from device.web.users import Role


@pytest.fixture
def staff_app(tmp_path):
    app = make_app(tmp_path)
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "1990"})
    return app, client, token


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("save", [False, True])
def test_api_scan_quality_refusal_is_422_with_reasons(staff_app, save):
    app, client, token = staff_app
    dark = _png(np.full((300, 400, 3), 10, np.uint8))
    extra = {"patient_id": "P1", "region": "trunk"} if save else {}
    resp = client.post("/api/scan", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={**extra, "image": (io.BytesIO(dark), "dark.png")})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["error"].startswith("retake: ") and "dark" in body["error"]
    assert body["saved"] is False and body["scan"] is None
    assert body["result"]["quality"]["ok"] is False
    store = app.config["TEST_STORE"]
    assert all(store.list_scans(v.id) == [] for v in store.list_visits("P1"))
