"""The labelling studio in a real Chromium (Playwright, as tests/test_browser.py): two
raters each draw a box with the mouse and grade it; the adjudicator settles the sign they
disagree on; then agreement and export run on what the browser saved. Screenshots of each
page go to the test's folder (and $TEAM_SCREENS when set)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from label_support import PASSWORD, add_users, make_project
from test_browser import _free_port, open_page

from trainer.__main__ import main as trainer_main

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def studio(tmp_path):
    from waitress.server import create_server

    from trainer.label.web import create_app

    project, db = make_project(tmp_path, overlap=1.0, n_patients=1, per_patient=1)
    add_users(db)
    srv = create_server(create_app(project), host="127.0.0.1", port=_free_port(), threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}", project, db
    srv.close()
    thread.join(5)


def _login(page, base, name):
    page.goto(f"{base}/login")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def _draw_and_grade(page, start, end, grades):
    from playwright.sync_api import expect

    # the queue's progress shows before the photo has decoded; the mouse does nothing until
    # the canvas says which photo it holds
    expect(page.locator("#canvas[data-photo]")).to_have_count(1)
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + (start[0] + end[0]) / 2, box["y"] + (start[1] + end[1]) / 2)
    page.mouse.move(box["x"] + end[0], box["y"] + end[1])
    page.mouse.up()
    expect(page.locator("#box-count")).to_have_text("1")
    # drag the box by its inside 20 px right, undo that, then drag it 40 px right
    for dx in (20, None, 40):
        if dx is None:
            page.keyboard.press("Control+z")
            continue
        page.mouse.move(box["x"] + start[0] + 30, box["y"] + start[1] + 30)
        page.mouse.down()
        page.mouse.move(box["x"] + start[0] + 30 + dx, box["y"] + start[1] + 30, steps=4)
        page.mouse.up()
    for sign, g in grades.items():
        page.click(f"#sign-{sign} button[data-grade='{g}']")


def test_two_raters_adjudicator_agreement_export(chromium, studio, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, project, db = studio
    with sync_playwright() as pw:
        browser, page, shot = open_page(pw, chromium, tmp_path, viewport={"width": 1280, "height": 800})
        try:
            # the photo arrives late, as on a loaded machine: drawing must wait for it
            page.route("**/photos/*/image", lambda route: (time.sleep(0.4), route.continue_()))
            page.goto(f"{base}/label")
            expect(page).to_have_url(f"{base}/login?next=/label")
            shot("login")
            for name, start, end, grades in (
                    ("alice", (60, 60), (300, 250), {"erythema": 0, "excoriation": 1,
                                                     "lichenification": 2}),
                    ("bob", (70, 70), (310, 260), {"erythema": 3, "excoriation": 1,
                                                   "lichenification": 1})):
                _login(page, base, name)
                expect(page).to_have_url(f"{base}/label")
                expect(page.locator("#progress-text")).to_have_text("0 of 1 done")
                _draw_and_grade(page, start, end, grades)
                shot(f"label-{name}")
                page.click("#save")
                expect(page.locator("#progress-text")).to_have_text("1 of 1 done")
                expect(page.locator("#message")).to_contain_text("All done")
                page.click("header button:has-text('Log out')")
            _login(page, base, "carol")
            expect(page).to_have_url(f"{base}/adjudicate")
            expect(page.locator(".lesion")).to_have_count(1)
            shot("adjudicate")
            page.click(".lesion tr.open button[value='2']")
            expect(page.locator("#message")).to_contain_text("erythema = 2")
            shot("adjudicated")
        finally:
            browser.close()
    rows = db.execute("SELECT rater, x, y, w, h, erythema FROM boxes ORDER BY rater").fetchall()
    assert [(r["rater"], r["erythema"]) for r in rows] == [("alice", 0), ("bob", 3)]
    assert all(r["w"] == r["h"] > 30 for r in rows)  # square by default, in photo pixels
    # canvas scale 640/120 (the 160x120 photo fills the 640 px high canvas): 60+40 px -> 18.75
    assert abs(rows[0]["x"] - 100 / (640 / 120)) <= 2, tuple(rows[0])
    out = tmp_path / "agreement.json"
    assert trainer_main(["label", "agreement", str(project.root), "--json", str(out),
                         "--bootstrap", "50"]) == 0
    report = json.loads(out.read_text())
    assert report["excoriation"]["exact_agreement"]["value"] == 1.0
    assert report["erythema"]["exact_agreement"]["value"] == 0.0
    assert report["boxes"]["iou"]["alice|bob"]["value"] > 0.8
    assert trainer_main(["label", "export", str(project.root), "--out",
                         str(tmp_path / "export")]) == 0
    manifest = (tmp_path / "export" / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 2
    row = dict(zip(manifest[0].split(","), manifest[1].split(","), strict=True))
    # erythema adjudicated 2; excoriation median 1; lichenification median of 2 and 1 -> 2
    assert (row["erythema"], row["excoriation"], row["lichenification"]) == ("2", "1", "2")
    assert row["adjudicated"] == "erythema" and row["n_raters"] == "2"
    assert len(list(tmp_path.glob("*.png"))) == 5
