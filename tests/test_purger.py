"""Retention runs: purge at start and daily, and the status page shows the last purge."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
from web_support import logged_in, make_app

from device.core.vocab import Region, Sign
from device.store import Store
from device.store.purger import Purger
from device.web.users import Role

T0 = dt.datetime(2026, 1, 10, 9, 0, tzinfo=dt.timezone.utc)


def _store_with_old_image(tmp_path):
    store = Store(tmp_path / "data", clock=lambda: T0, retention_days=30)
    store.create_patient("P1", 1990)
    visit = store.open_visit("P1")
    scan = store.save_region_scan(visit.id, Region.TRUNK, grades={Sign.ERYTHEMA: 1},
                                  image=np.zeros((16, 16, 3), np.uint8))
    assert store.image_file(scan) is not None
    return store, scan


def test_run_once_deletes_expired_images_and_records_it(tmp_path):
    store, scan = _store_with_old_image(tmp_path)
    purger = Purger(store, clock=lambda: T0 + dt.timedelta(days=10))
    assert purger.run_once().deleted == 0  # younger than 30 days: kept
    purger.clock = lambda: T0 + dt.timedelta(days=31)
    record = purger.run_once()
    assert record.deleted == 1 and record.error is None and record.retention_days == 30
    assert store.image_file(store.get_scan(scan.id)) is None
    assert purger.last == record and record.time.startswith("2026-02-10")


def test_a_failing_disk_is_recorded_not_raised(tmp_path):
    store, _ = _store_with_old_image(tmp_path)

    def broken(now=None):
        raise OSError(30, "Read-only file system")

    store.purge_expired = broken
    record = Purger(store).run_once()
    assert record.deleted == 0 and "Read-only" in record.error


def test_start_purges_at_once_then_on_schedule(tmp_path):
    store, _ = _store_with_old_image(tmp_path)
    runs = []
    real = store.purge_expired
    store.purge_expired = lambda now=None: runs.append(now) or real(now)
    purger = Purger(store, every_s=0.05, clock=lambda: T0 + dt.timedelta(days=40))
    purger.start()
    deadline = time.monotonic() + 5
    while len(runs) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    purger.stop()
    assert len(runs) >= 3 and purger.last.deleted == 0  # the first run deleted it
    assert store.image_file(store.list_scans(1)[0]) is None


def test_status_page_shows_the_last_purge(tmp_path):
    app = make_app(tmp_path)
    client, _ = logged_in(app, Role.TECHNICIAN)
    assert "not scheduled" in client.get("/status").get_data(as_text=True)
    store = app.config["TEST_STORE"]
    purger = Purger(store, clock=lambda: T0)
    app.extensions["atopiscan"].purger = purger
    purger.run_once()
    html = client.get("/status").get_data(as_text=True)
    assert "last purge 2026-01-10 09:00 UTC" in html and "0 image files deleted" in html
    data = client.get("/api/status").get_json()["retention"]
    assert data["scheduled"] and data["last_purge"]["deleted"] == 0
