"""Why each sign needs review is kept in the store (schema 7), so the result page shows
it after a restart, not only while the scan is in the app's memory."""

from __future__ import annotations

import re

from store_support import drop_column, make_older
from web_support import (
    FAST_HASH,
    capture_from_preview,
    fake_models,
    logged_in,
    make_app,
    make_config,
)

from device.cameras import FolderCamera
from device.core.vocab import Region, Sign
from device.scan.service import Service
from device.store import Store
from device.store.schema import SCHEMA_VERSION, Capture
from device.web import create_app
from device.web.users import Role, UserStore


def test_reasons_round_trip_and_a_version_6_file_gains_the_column(tmp_path):
    s = Store(tmp_path)
    s.create_patient("P1", 1990)
    visit = s.open_visit("P1").id
    old = s.save_region_scan(visit, Region.TRUNK)
    kept = s.save_region_scan(visit, Region.HEAD_NECK, capture=Capture(review_reasons={
        Sign.EXCORIATION: ["unsure: top probability 0.40 < 0.5"], Sign.ERYTHEMA: []}))
    assert kept.review_reasons == {Sign.EXCORIATION: ["unsure: top probability 0.40 < 0.5"]}
    s.close()
    make_older(tmp_path, 6, drop_column("review_reasons"))
    s = Store(tmp_path)
    assert s._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 7
    assert s.get_scan(old.id).review_reasons == {}  # a scan from before 7: none were kept
    s.close()


def test_result_page_shows_review_reasons_after_a_restart(tmp_path):
    app = make_app(tmp_path)
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P001",
                                   "birth_year": "1990"})
    scan_id = capture_from_preview(client, token)
    before = client.get(f"/scan/result/{scan_id}").get_data(as_text=True)
    shown = re.findall(r'class="muted review-reasons"[^>]*>([^<]+)<', before)
    assert shown, "the fake models flag excoriation: its reasons must be on the page"

    # a restart: a new service, store and app over the same data folder, nothing in memory
    config = make_config(tmp_path)
    store = Store(config.storage.data_dir)
    assert store.get_scan(scan_id).review_reasons[Sign.EXCORIATION]
    users = UserStore.in_data_dir(config.storage.data_dir, hash_method=FAST_HASH)
    service = Service(config, FolderCamera(config.camera.folder), fake_models())
    again = create_app(config, service=service, store=store, users=users, testing=True)
    client2, _ = logged_in(again, Role.STAFF)
    after = client2.get(f"/scan/result/{scan_id}").get_data(as_text=True)
    assert re.findall(r'class="muted review-reasons"[^>]*>([^<]+)<', after) == shown
    assert 'id="sign-excoriation"' in after and "review</span>" in after
