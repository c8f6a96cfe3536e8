"""The capture screen in real Chromium at 800x480 (the Pi's 7-inch screen), against
waitress with the dashboard's server options and a synthetic camera: the live stream
and hints, Capture, dragging and resizing the crop square with mouse events, "Grade this
square", save, the next region, a camera that vanishes and returns; no page scrolls
sideways and touch targets are at least 44 px. Screenshots go to the test's folder
(and to $TEAM_SCREENS when set)."""

from __future__ import annotations

import threading
import time

import pytest
from test_browser import _login, open_page
from web_support import FAST_HASH, PASSWORD, UnpluggableCamera, fake_models, make_config

from device.cameras import RetryingCamera, SyntheticCamera
from device.config import CropMode

pytestmark = [pytest.mark.slow, pytest.mark.browser]

#: Controls a finger must hit; inline text links inside sentences are not counted.
TARGETS = ("button:visible, a.button:visible, select:visible, header nav a:visible, "
           "input[type=text]:visible, input[type=number]:visible, input[type=password]:visible, "
           ".choices label:visible, input[type=file]:visible, main a:visible, header a:visible")


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
    # holds each scene (a steady hand) and can be unplugged
    camera = UnpluggableCamera(SyntheticCamera(640, 480, seed=4, scene_seconds=600))
    users = UserStore.in_data_dir(config.storage.data_dir, hash_method=FAST_HASH)
    users.add("nurse", PASSWORD, "admin")  # staff pages and the status page
    app = create_app(config, service=Service(config, RetryingCamera(camera, retry_seconds=0.2),
                                             fake_models()),
                     store=Store(config.storage.data_dir), users=users)
    srv = create_server(app, host="127.0.0.1", port=0, **server_options())
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}", camera, app
    app.extensions["atopiscan"].scans.close()
    srv.close()
    thread.join(5)


def _fits(page, what: str) -> None:
    """No sideways scroll, and every touch target at least 44 px high (and wide)."""
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{what}: the page scrolls sideways ({width[0]} > {width[1]})"
    small = []
    for handle in page.locator(TARGETS).all():
        box = handle.bounding_box()
        if box and (box["height"] < 43.5 or box["width"] < 43.5):
            small.append((handle.evaluate("e => e.outerHTML.slice(0, 80)"), box["width"],
                          box["height"]))
    assert not small, f"{what}: touch targets under 44 px: {small}"


def _drag(page, start, end, steps=8):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def test_aim_capture_move_the_square_recrop_save(chromium, server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, camera, app = server
    with sync_playwright() as pw:
        browser, page, shot = open_page(pw, chromium, tmp_path)
        try:
            page.goto(f"{base}/scan/stream.mjpg")
            expect(page).to_have_url(f"{base}/login?next=/scan/stream.mjpg")  # login first
            _fits(page, "login")
            _login(page, base, "nurse")

            # patient (the id is the only thing typed), birth year and region by touch
            page.goto(f"{base}/scan")
            page.fill("#new-id", "P-0815")
            page.select_option("#new-year", "2019")
            page.click("form:has(#new-id) button[type=submit]")
            expect(page.locator("#patient")).to_have_value("P-0815")
            page.click("label:has(input[value=upper_limbs])")

            # aim: the stream plays, hints arrive several times a second, the square shows
            expect(page.locator("#preview-state")).to_have_text("live")
            expect(page.locator("#hints li").first).to_be_visible()
            expect(page.locator("#crop-rect")).to_be_visible()
            first = page.evaluate("() => window.atopiscanHints")
            time.sleep(2.0)
            rate = (page.evaluate("() => window.atopiscanHints") - first) / 2.0
            assert rate >= 2, f"{rate} hint updates a second"  # the bench measures the rate
            page.wait_for_function("() => document.querySelector('#preview-img').naturalWidth == 640")
            _fits(page, "scan")
            shot("aim")

            page.click("#capture")
            expect(page).to_have_url(f"{base}/scan/result/1")
            expect(page.locator("#frame-box")).to_be_visible()
            # the frozen frame has decoded before the square is dragged on it (waited, not read
            # once: on a loaded machine the box shows before the image arrives)
            page.wait_for_function("() => document.querySelector('#frame-img').naturalWidth > 0")
            _fits(page, "result")
            shot("frozen")

            # drag the square with the mouse, then resize it from a corner
            before = [page.input_value(f"#box-{k}") for k in "xywh"]
            sq = page.locator("#crop-square").bounding_box()
            centre = (sq["x"] + sq["width"] / 2, sq["y"] + sq["height"] / 2)
            _drag(page, centre, (centre[0] - 70, centre[1] - 40))
            moved = [page.input_value(f"#box-{k}") for k in "xywh"]
            assert int(moved[0]) < int(before[0]) and int(moved[1]) < int(before[1])
            assert moved[2:] == before[2:]  # moving keeps the size
            se = page.locator("#crop-square .handle.se").bounding_box()
            corner = (se["x"] + se["width"] / 2, se["y"] + se["height"] / 2)
            _drag(page, corner, (corner[0] + 30, corner[1] + 30))
            resized = [int(page.input_value(f"#box-{k}")) for k in "xywh"]
            assert resized[2] == resized[3] > int(before[2])  # bigger, and still square
            shot("moved")

            page.click("#recrop")
            expect(page).to_have_url(f"{base}/scan/result/1")
            expect(page.locator("#crop-info")).to_contain_text("moved by nurse")
            scan = app.extensions["atopiscan"].store.get_scan(1)
            assert scan.crop_mode == "moved" and list(scan.crop_box) == resized
            shot("recropped")

            # grades and area by touch, save, then the next region
            page.click("label:has(input[name=papulation][value='1'])")
            page.click("button[data-area='20']")
            assert page.input_value("#area") == "20"
            page.click("#save")
            expect(page).to_have_url(f"{base}/visits/1")
            _fits(page, "visit")
            shot("visit")
            page.click("#region-trunk a.button:has-text('Scan')")
            expect(page.locator("input[type=radio][value=trunk]")).to_be_checked()
            expect(page.locator("#preview-state")).to_have_text("live")

            # the camera vanishes mid-stream, then comes back by itself
            camera.present = False
            expect(page.locator("#preview-state")).to_contain_text("Camera unavailable")
            time.sleep(1.0)  # the stream's own "camera unavailable" frame
            shot("camera-lost")
            camera.present = True
            expect(page.locator("#preview-state")).to_have_text("live")

            for path, name in (("/patients", "patients"), ("/patients/P-0815", "history"),
                               ("/status", "status"), ("/models", "models")):
                page.goto(base + path)
                _fits(page, name)
                if name == "status":
                    shot("status")
        finally:
            browser.close()
    assert len(list(tmp_path.glob("*.png"))) == 7


def test_the_preview_comes_back_by_itself_after_the_stream_caps_refused_it(chromium, server,
                                                                           tmp_path):
    """A stream refused at the caps (503) closes an EventSource for good; the page opens
    the hints again by itself once a slot is free, instead of staying on 'reconnecting…'."""
    from playwright.sync_api import expect, sync_playwright

    from device.web.stream import slots

    base, _, app = server
    with app.app_context():
        cap = slots()
    taken = [cap.take(f"another-login-{i}") for i in range(cap.max_streams)]
    with sync_playwright() as pw:
        browser, page, _ = open_page(pw, chromium, tmp_path)
        try:
            _login(page, base, "nurse")
            page.goto(f"{base}/scan")
            expect(page.locator("#preview-state")).to_contain_text("reconnecting", timeout=10000)
            for give_back in taken:
                give_back()
            expect(page.locator("#preview-state")).to_have_text("live", timeout=10000)
        finally:
            browser.close()
