"""Benchmark: grade photos in the studio with the keyboard only, in a real Chromium.

    PYTHONPATH=$PWD:$PWD/tests .venv/bin/python tests/bench_label_keyboard.py --photos 12

Per photo the rater presses B (a box in the middle), four arrow keys (move it), 2 1 0
(erythema, excoriation, lichenification) and Enter (save, next photo loads). Prints the
keystrokes per photo and the seconds per photo from the first key to the next photo on
screen: the software's share of a rater's time (a person also has to look and decide).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from label_support import PASSWORD, add_users, skin_photo

KEYS = ["b", "Shift+ArrowRight", "Shift+ArrowRight", "Shift+ArrowDown", "ArrowLeft",
        "2", "1", "0", "Enter"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright
    from waitress.server import create_server

    from trainer.label.db import connect, create_project
    from trainer.label.photos import import_photos
    from trainer.label.web import create_app

    tmp = Path(tempfile.mkdtemp(prefix="label-bench-"))
    for k in range(args.photos):
        skin_photo(tmp / "photos" / f"p{k:03d}.jpg", 1024, 768, seed=k)
    project = create_project(tmp / "proj", (tmp / "photos").resolve())
    db = connect(project)
    import_photos(db, (tmp / "photos").resolve())
    add_users(db, raters=("alice",), adjudicators=())
    srv = create_server(create_app(project), host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=srv.run, daemon=True).start()
    base = f"http://127.0.0.1:{srv.effective_port}"
    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/login")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#progress-text")).to_have_text(f"0 of {args.photos} done")
        for k in range(args.photos):
            start = time.perf_counter()
            for key in KEYS:
                page.keyboard.press(key)
            expect(page.locator("#progress-text")).to_have_text(f"{k + 1} of {args.photos} done")
            if k + 1 < args.photos:
                expect(page.locator("#box-count")).to_have_text("0")
            times.append(time.perf_counter() - start)
        browser.close()
    srv.close()
    saved = db.execute("SELECT COUNT(*) FROM boxes WHERE erythema = 2 AND excoriation = 1"
                       " AND lichenification = 0").fetchone()[0]
    assert saved == args.photos, f"only {saved} of {args.photos} photos saved as graded"
    print(f"{args.photos} photos graded with the keyboard only, {len(KEYS)} keystrokes each "
          f"({' '.join(KEYS)})")
    print(f"seconds per photo, first key to next photo shown: median {statistics.median(times):.3f},"
          f" max {max(times):.3f} (1024x768 photos; the machine's share, not a person's)")


if __name__ == "__main__":
    main()
