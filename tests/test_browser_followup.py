"""One lesion through three visits in real Chromium at 800x480: the first scan starts
the lesion, the follow-ups aim with its last photo faint over the live preview (toggled
on and off), capture finds the crop again by registration, and the lesion's timeline
shows the three crops, the grade chart and the marked changes. Screenshots go to the
test's folder (and to $TEAM_SCREENS when set)."""

from __future__ import annotations

import threading

import pytest
from test_browser import _login, open_page
from web_support import FAST_HASH, fake_models, make_config

from device.cameras import RetryingCamera
from device.cameras.base import CameraState, CameraStatus
from device.config import CropMode
from device.tools.visit_synth import render_followup

pytestmark = [pytest.mark.slow, pytest.mark.browser]



class VisitCamera:
    """Shows visit ``index``'s photo of one synthetic lesion (the patient's arm held still)."""

    def __init__(self) -> None:
        self.frames = [p.frame for p in render_followup(21, 3, width=640, height=480)]
        self.index = 0
        self.status = CameraStatus()

    def open(self) -> None:
        self.status.state = CameraState.OK

    def read(self):
        self.status.frames += 1
        return self.frames[self.index].copy()

    def close(self) -> None:
        self.status.state = CameraState.CLOSED


@pytest.fixture
def server(tmp_path):
    from waitress.server import create_server

    from device.cli.run import server_options
    from device.scan.service import Service
    from device.store import Store
    from device.web import create_app
    from device.web.users import UserStore

    config = make_config(tmp_path)
    config.crop.mode = CropMode.AUTO
    config.camera.width, config.camera.height = 640, 480
    camera = VisitCamera()
    users = UserStore.in_data_dir(config.storage.data_dir, hash_method=FAST_HASH)
    users.add("nurse", "correct-horse-battery", "staff")
    store = Store(config.storage.data_dir)
    app = create_app(config, service=Service(config, RetryingCamera(camera, retry_seconds=0.2),
                                             fake_models()), store=store, users=users)
    srv = create_server(app, host="127.0.0.1", port=0, **server_options())
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}", camera, store
    app.extensions["atopiscan"].scans.close()
    srv.close()
    thread.join(5)


def _save_and_close(page, base, grades: dict[str, str]) -> None:
    for sign, grade in grades.items():
        page.click(f"#sign-{sign} label:has(input[value='{grade}'])")
    page.click("#save")
    page.click("form:has(input[name=status][value=closed]) button")


def test_one_lesion_through_three_visits(chromium, server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, camera, store = server
    with sync_playwright() as pw:
        browser, page, shot = open_page(pw, chromium, tmp_path, timeout_ms=20000)
        try:
            _login(page, base, "nurse")

            # visit 1: scan, then start following the lesion from the result page
            page.goto(f"{base}/scan")
            page.fill("#new-id", "P-25")
            page.click("form:has(#new-id) button[type=submit]")
            page.click("label:has(input[value=upper_limbs])")
            expect(page.locator("#preview-state")).to_have_text("live")
            page.click("#capture")
            expect(page).to_have_url(f"{base}/scan/result/1")
            page.click("#follow-lesion summary")
            page.fill("#lesion-site", "left antecubital fossa")
            page.fill("#lesion-label", "L elbow")
            page.click("#start-lesion-btn")
            expect(page.locator("#lesion-info")).to_contain_text("L elbow")
            _save_and_close(page, base, {"erythema": "3", "excoriation": "2",
                                         "lichenification": "2"})

            for visit, grades in ((1, {"erythema": "2", "excoriation": "2",
                                       "lichenification": "2"}),
                                  (2, {"erythema": "1", "excoriation": "1",
                                       "lichenification": "2"})):
                camera.index = visit
                page.goto(f"{base}/scan?patient=P-25")
                page.select_option("#lesion", "1")
                page.click("#aim")
                expect(page.locator("#following")).to_contain_text("L elbow")
                ghost = page.locator("#ghost")
                expect(ghost).to_be_visible()
                page.wait_for_function(  # the last photo has loaded
                    "() => { const g = document.getElementById('ghost');"
                    " return g.complete && g.naturalWidth > 0; }")
                assert float(ghost.evaluate("i => getComputedStyle(i).opacity")) < 0.6
                expect(page.locator("#preview-state")).to_have_text("live")
                shot(f"visit{visit + 1}-aim-overlay")
                page.click("#ghost-switch")
                expect(ghost).to_be_hidden()
                page.click("#ghost-switch")
                expect(ghost).to_be_visible()
                page.click("#capture")
                expect(page.locator(".flash.info")).to_contain_text(
                    "Found the lesion of the last visit")
                expect(page.locator("#lesion-info")).to_contain_text("L elbow")
                shot(f"visit{visit + 1}-registered")
                scan_id = int(page.url.rsplit("/", 1)[1])
                assert store.get_scan(scan_id).crop_mode == "registered"
                _save_and_close(page, base, grades)

            page.goto(f"{base}/lesions/1")
            expect(page.locator("#lesion-visits figure")).to_have_count(3)
            expect(page.locator("svg.grades path")).to_have_count(3)
            marked = page.locator("#lesion-changes [data-marked]")
            expect(marked).to_have_count(4)  # erythema -2 and -1, excoriation -1 and -1
            width = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
            assert width[0] <= width[1], "the timeline scrolls sideways"
            shot("timeline")
        finally:
            browser.close()
