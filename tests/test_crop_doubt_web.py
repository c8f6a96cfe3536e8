"""The result page says when the auto crop was unsure, and why (its typed doubt), where
it shows the crop mode."""

from __future__ import annotations

import cv2
import numpy as np
from web_support import capture_from_preview, csrf_token, login, make_app

from device.config import CropMode
from device.web.users import Role


def test_an_unsure_auto_crop_says_why_on_the_result_page(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):  # plain skin: nothing stands out, so the auto crop is unsure
        skin = np.zeros((360, 480, 3), np.float32) + (225, 180, 150) + rng.normal(0, 2, (360, 480, 3))
        cv2.imwrite(str(frames / f"frame{i:02d}.png"),
                    cv2.cvtColor(np.clip(skin, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    app = make_app(tmp_path)
    app.extensions["atopiscan"].config.crop.mode = CropMode.AUTO
    client = app.test_client()
    login(client, Role.STAFF.value)
    token = csrf_token(client)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P001",
                                   "birth_year": "1990"})
    scan_id = capture_from_preview(client, token)
    page = client.get(f"/scan/result/{scan_id}").get_data(as_text=True)
    assert '<span id="crop-doubt">auto crop unsure: nothing stands out</span>' in page, page[:3000]
    assert "no region stands out (score" in page and "the guide square was graded" in page
