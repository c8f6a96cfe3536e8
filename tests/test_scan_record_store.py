"""One typed record of a scan (device.core.scanrecord.Scan) goes from the pipeline to the
store (schema 8) and to the JSON unchanged, so the result page's crop line and the JSON
API's ``details`` are the same after a restart as before it."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import cv2
import numpy as np
from web_support import (
    FAST_HASH,
    PASSWORD,
    capture_from_preview,
    fake_models,
    logged_in,
    make_config,
)

from device import actions
from device.cameras import FolderCamera
from device.config import CropMode
from device.core.scanrecord import Scan
from device.core.vocab import Region
from device.scan.pipeline import Scanner
from device.scan.service import Service
from device.store import DB_NAME, Store
from device.store.schema import SCHEMA_VERSION
from device.web import create_app
from device.web.users import Role, UserStore


def _plain_skin(seed: int = 0) -> np.ndarray:
    """Skin-toned noise with no lesion: an auto crop falls back to the guide square."""
    rng = np.random.default_rng(seed)
    return np.clip(np.array([205, 160, 140]) + rng.normal(0, 12, (360, 480, 3)), 0, 255
                   ).astype(np.uint8)


def _auto_config(tmp_path: Path):
    frames = tmp_path / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(frames / "plain.jpg"), cv2.cvtColor(_plain_skin(), cv2.COLOR_RGB2BGR))
    config = make_config(tmp_path)
    config.crop.mode = CropMode.AUTO
    return config


def _app(config):
    """A fresh service, store and app over ``config``'s data folder (a restart)."""
    store = Store(config.storage.data_dir)
    users = UserStore.in_data_dir(config.storage.data_dir, hash_method=FAST_HASH)
    if not users.get("staff"):
        users.add("staff", PASSWORD, Role.STAFF)
    service = Service(config, FolderCamera(config.camera.folder), fake_models())
    return create_app(config, service=service, store=store, users=users, testing=True)


def _json(value) -> str:
    return json.dumps(value, sort_keys=True)


def test_the_record_is_stored_whole_and_reads_back_equal(tmp_path):
    config = _auto_config(tmp_path)
    result = Scanner(config, FolderCamera(config.camera.folder), fake_models()).scan(
        image=_plain_skin())
    record = result.record()
    assert record.crop is not None and record.crop.fallback and record.crop.reason
    assert Scan.from_dict(json.loads(_json(record.to_dict()))) == record
    assert _json(record.to_dict()) == _json(result.to_dict())  # one JSON shape, one source

    store = Store(tmp_path / "data")
    store.create_patient("P1", 1990)
    visit = store.open_visit("P1").id
    saved = actions.save_scan(store, visit, Region.TRUNK, result, actions.Actor("nurse"))
    again = store.get_scan(saved.id)
    assert again.result == record
    assert again.probs == {s: list(g.probs) for s, g in record.grades.items()}
    assert again.crop_mode == record.crop.mode.value == "guide"
    by_hand = store.save_region_scan(visit, Region.HEAD_NECK)
    assert store.get_scan(by_hand.id).result is None
    store.close()

    conn = sqlite3.connect(tmp_path / "data" / DB_NAME)  # a version-7 file gains the column
    conn.execute("ALTER TABLE region_scans DROP COLUMN result")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    reopened = Store(tmp_path / "data")
    assert reopened._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 8
    assert reopened.get_scan(saved.id).result is None  # from before 8: nothing was kept
    reopened.close()


def _crop_line(page: str) -> str:
    found = re.search(r'id="crop-info">(.*?)</p>', page, re.S)
    assert found, page[:2000]
    return found.group(1)


def test_result_page_and_api_details_are_the_same_after_a_restart(tmp_path):
    config = _auto_config(tmp_path)
    app = _app(config)
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P001",
                                   "birth_year": "1990"})
    scan_id = capture_from_preview(client, token)
    line = _crop_line(client.get(f"/scan/result/{scan_id}").get_data(as_text=True))
    assert "auto crop unsure" in line and "the guide square was graded" in line, line
    details = client.get(f"/api/scans/{scan_id}").get_json()["details"]
    assert details["crop"]["fallback"] and details["timings_ms"]["total"] > 0
    assert details["grades"]["excoriation"]["review_reasons"]

    again = _app(config)  # a restart: nothing of the first app's memory
    client2, token2 = logged_in(again, Role.STAFF)
    assert _crop_line(client2.get(f"/scan/result/{scan_id}").get_data(as_text=True)) == line
    assert _json(client2.get(f"/api/scans/{scan_id}").get_json()["details"]) == _json(details)

    # a moved square (graded from the kept frame) replaces the record with its own result
    moved = client2.post(f"/api/scans/{scan_id}/regrade", json={"box": [60, 60, 150, 150]},
                         headers={"X-CSRFToken": token2})
    assert moved.status_code == 200, moved.get_json()
    now = client2.get(f"/api/scans/{scan_id}").get_json()
    assert _json(now["details"]) == _json(moved.get_json()["result"])
    assert now["details"]["crop"]["mode"] == "box" and now["scan"]["crop_mode"] == "moved"
