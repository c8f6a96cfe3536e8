"""A real browser on the real server: Playwright driving Debian's chromium against
waitress on 127.0.0.1, a folder camera of synthetic skin photos and a pack of
tiny real models. Logs in, scans, overrides a grade, saves, completes the visit,
sees the EASI on the summary, and screenshots each page (copied to
$TEAM_SCREENS when set)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from web_support import FAST_HASH, PASSWORD, make_config, tiny_pack_file

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """The real app (real Service, Store, installed pack) under waitress in a thread."""
    from waitress.server import create_server

    from device.cli.run import server_options
    from device.packs.install import install_pack
    from device.scan.service import Service
    from device.store import Store
    from device.web import create_app
    from device.web.users import UserStore

    config = make_config(tmp_path)
    install_pack(tiny_pack_file("2025.1.0"), config.packs.dir)
    service = Service.from_config(config)
    assert service.pack_version == "2025.1.0"
    data_dir = config.storage.data_dir
    users = UserStore.in_data_dir(data_dir, hash_method=FAST_HASH)
    users.add("nurse", PASSWORD, "staff")
    users.add("tech", PASSWORD, "technician")
    app = create_app(config, service=service, store=Store(data_dir), users=users)
    srv = create_server(app, host="127.0.0.1", port=_free_port(), **server_options())
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()
    thread.join(5)
    service.close()


class Shots:
    def __init__(self, page, folder: Path) -> None:
        self.page, self.folder, self.paths = page, folder, []

    def __call__(self, name: str) -> Path:
        path = self.folder / f"{len(self.paths) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        team = os.environ.get("TEAM_SCREENS")
        if team:
            Path(team).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(team) / path.name)
        return path


#: The device's 7-inch touch screen.
DEVICE_SCREEN = {"width": 800, "height": 480}


def open_page(pw, chromium: Path, folder: Path, *, viewport: dict | None = None,
              timeout_ms: int = 15000):
    """A headless chromium (close it: ``browser.close()``), a page of ``viewport``
    (default: the device's screen) and its screenshots into ``folder``."""
    browser = pw.chromium.launch(executable_path=str(chromium), headless=True, args=ARGS)
    page = browser.new_page(viewport=viewport or DEVICE_SCREEN)
    page.set_default_timeout(timeout_ms)
    return browser, page, Shots(page, folder)


def _login(page, base: str, user: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_staff_scans_overrides_saves_and_sees_easi(chromium, server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base = server
    with sync_playwright() as pw:
        browser, page, shot = open_page(pw, chromium, tmp_path)
        try:
            page.goto(f"{base}/scan")
            expect(page).to_have_url(f"{base}/login?next=/scan")
            shot("login")
            _login(page, base, "nurse")
            expect(page).to_have_url(f"{base}/scan")

            # new patient, then region + live preview
            expect(page.locator("#new-id")).to_be_visible()  # open: no patients yet
            page.fill("#new-id", "P-0042")
            page.select_option("#new-year", "1985")
            page.click("form:has(#new-id) button[type=submit]")
            expect(page.locator("#patient")).to_have_value("P-0042")
            page.click("label:has(input[value=trunk])")
            expect(page.locator("#preview-state")).to_have_text("live")
            expect(page.locator("#hints li").first).to_be_visible()  # live hints arrive
            shot("scan")

            page.click("#capture")
            expect(page).to_have_url(f"{base}/scan/result/1")
            expect(page.locator("#sign-erythema .bar").first).to_be_visible()
            assert page.locator(".bars").count() == 3
            page.wait_for_function("() => document.querySelector('.crop').naturalWidth > 0")
            shot("result")

            # override erythema to 3 (whatever the model said), add papulation and area
            page.click("#sign-erythema label:has(input[value='3'])")
            page.click("label:has(input[name=papulation][value='1.5'])")
            page.fill("#area", "25")
            page.click("#save")
            expect(page).to_have_url(f"{base}/visits/1")
            expect(page.locator("#missing")).to_be_visible()
            shot("visit-incomplete")

            for region in ("head_neck", "upper_limbs", "lower_limbs"):
                page.click(f"#clear-{region}")
                expect(page).to_have_url(f"{base}/visits/1")
            expect(page.locator("#easi-total")).to_contain_text("EASI ")
            total = page.inner_text("#easi-total")
            band = page.inner_text("#easi-band")
            assert "—" not in total and band
            assert page.locator("#region-trunk .edited").count() == 1  # erythema overridden
            shot("visit-complete")

            with page.expect_download() as download:
                page.click("text=FHIR R4")
            assert download.value.suggested_filename.endswith(".fhir.json")

            page.goto(f"{base}/patients/P-0042")
            expect(page.locator("svg.chart")).to_be_visible()
            shot("history")
            page.click("header button:has-text('Log out')")
            expect(page).to_have_url(f"{base}/login")

            # technician: status and models, on a laptop-sized window
            page.set_viewport_size({"width": 1280, "height": 800})
            _login(page, base, "tech")
            expect(page).to_have_url(f"{base}/status")
            expect(page.locator("#pack-version")).to_have_text("2025.1.0")
            assert "measured on synthetic data" in page.inner_text("main")
            shot("status")
            page.goto(f"{base}/models")
            expect(page.locator("#running-version")).to_have_text("2025.1.0")
            shot("models")
        finally:
            browser.close()
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(names) == 8, names
