"""The field-agreement monitor: its rates and mean changes equal hand counts of the
overrides, over the last N reviewed scans and since the pack in use; the status page
and /api/status show it, with a warning above the configured rate."""

from __future__ import annotations

import datetime as dt

import pytest
from web_support import logged_in, make_app

from device.core.vocab import Region, Sign
from device.store import Store
from device.store.monitor import field_agreement
from device.web.users import Role

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.timezone.utc)
MODEL = {Sign.ERYTHEMA: 1, Sign.EXCORIATION: 2, Sign.LICHENIFICATION: 0}
#: Per scan, oldest first: (pack, staff's erythema grade or None to keep, reviewed?)
SCANS = [
    ("1.0", 3, True),     # old pack: +2
    ("2.0", None, True),
    ("2.0", 2, True),     # +1
    ("2.0", 0, True),     # -1
    ("2.0", 2.5, False),  # overridden but never confirmed: not counted
    ("2.0", None, True),
    ("2.0", 1.5, True),   # +0.5
]


def fill(store: Store) -> None:
    store.create_patient("P1", None)
    visit = store.open_visit("P1", T0.date())
    for i, (pack, ery, reviewed) in enumerate(SCANS):
        scan = store.save_region_scan(visit.id, Region.TRUNK, grades=MODEL, pack_version=pack,
                                      taken_at=T0 + dt.timedelta(minutes=i))
        if ery is not None:
            store.override_grade(scan.id, Sign.ERYTHEMA, ery, "ann", "staff")
        if reviewed:
            store.confirm_review(scan.id, "ann", "staff")


def test_rates_match_hand_counts(tmp_path):
    store = Store(tmp_path, clock=lambda: T0)
    fill(store)
    report = field_agreement(store, "2.0", window=4, warn_rate=0.5, min_scans=3)
    ery = {a.sign: a for a in report.recent}[Sign.ERYTHEMA]
    # last 4 reviewed: +1, -1, keep, +0.5 -> 3 of 4 changed, mean (+1 - 1 + 0.5) / 3
    assert (ery.scans, ery.changed) == (4, 3)
    assert ery.rate == pytest.approx(0.75) and ery.mean_change == pytest.approx(0.5 / 3)
    assert ery.mean_abs_change == pytest.approx(2.5 / 3) and ery.warning
    since = {a.sign: a for a in report.since_pack}[Sign.ERYTHEMA]
    # pack 2.0, reviewed: keep, +1, -1, keep, +0.5 -> 3 of 5
    assert (since.scans, since.changed, since.warning) == (5, 3, True)
    exc = {a.sign: a for a in report.recent}[Sign.EXCORIATION]
    assert (exc.scans, exc.changed, exc.rate, exc.mean_change, exc.warning) == (4, 0, 0, None, False)
    whole = field_agreement(store, "1.0", window=50, warn_rate=0.5, min_scans=10)
    ery = {a.sign: a for a in whole.recent}[Sign.ERYTHEMA]
    assert (ery.scans, ery.changed, ery.mean_change, ery.warning) == (6, 4, pytest.approx(2.5 / 4), False)
    assert len(report.warnings) == 1  # one line per sign, its recent window first
    assert report.warnings[0].startswith("staff changed erythema on 75 % of the last 4 scans")
    store.close()


def test_status_page_and_api_show_the_monitor(tmp_path):
    app = make_app(tmp_path)
    store = app.config["TEST_STORE"]
    store.create_patient("P1", None)
    visit = store.open_visit("P1")
    for i in range(4):  # the fake pack grades erythema 2; staff say 3 on every other scan
        scan = store.save_region_scan(visit.id, Region.TRUNK, grades=MODEL | {Sign.ERYTHEMA: 2},
                                      pack_version="2025.1.0")
        if i % 2:
            store.override_grade(scan.id, Sign.ERYTHEMA, 3, "ann", "staff")
        store.confirm_review(scan.id, "ann", "staff")
    tech, _ = logged_in(app, Role.TECHNICIAN)
    data = tech.get("/api/status").get_json()["field_agreement"]
    assert data["recent"]["erythema"]["rate"] == 0.5
    assert data["since_pack"]["erythema"]["mean_change"] == 1.0 and data["pack_version"] == "2025.1.0"
    assert data["warnings"] == []  # 4 scans: under the default min_scans of 20
    page = tech.get("/status").get_data(as_text=True)
    assert 'id="agreement-erythema"' in page and "50 %" in page and "+1.0" in page
    app.extensions["atopiscan"].config.monitor.min_scans = 2
    page = tech.get("/status").get_data(as_text=True)
    assert "staff changed erythema on 50 % of the last 4 scans (2 of 4), mean change +1.0" in page

