"""Schema 2 of the scan store: the frame, crop box, crop mode and quality measures kept
with each scan, who confirmed it, the role behind each override, and the v1 migration."""

from __future__ import annotations

import datetime as dt
import os

import cv2
import numpy as np
import pytest
from store_support import drop_column, make_older

from device.core.vocab import Region, Sign
from device.store import Store
from device.store.schema import SCHEMA_VERSION, V2_COLUMNS, Capture

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.timezone.utc)
GRADES = {Sign.ERYTHEMA: 2, Sign.EXCORIATION: 1, Sign.LICHENIFICATION: 0}


def frame(seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (5, 5), 0)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data", clock=lambda: T0, retention_days=30)
    s.create_patient("P1", 1990)
    yield s
    s.close()


def save(store, seed=0):
    visit = store.open_visit("P1")
    full = frame(seed)
    box = (40, 20, 64, 64)
    crop = full[20:84, 40:104]
    cap = Capture(frame=full, box=box, crop_mode="guide", quality={"brightness": 120.123456})
    return store.save_region_scan(visit.id, Region.TRUNK, grades=GRADES, image=crop,
                                  pack_version="1.0", capture=cap), full, crop


def test_capture_is_kept_with_the_scan(store):
    scan, full, crop = save(store)
    assert scan.crop_box == (40, 20, 64, 64) and scan.crop_mode == "guide"
    assert scan.quality == {"brightness": 120.1235}
    saved_crop = cv2.cvtColor(cv2.imread(str(store.image_file(scan))), cv2.COLOR_BGR2RGB)
    assert np.array_equal(saved_crop, crop)  # lossless: the pixels the models graded
    saved_frame = cv2.imread(str(store.data_dir / scan.frame_path))
    assert scan.frame_path.endswith(".jpg") and saved_frame.shape == full.shape
    assert scan.reviewed is None
    assert scan.to_dict()["crop_box"] == [40, 20, 64, 64]


def test_keep_frames_off_keeps_the_crop_only(tmp_path):
    s = Store(tmp_path, keep_frames=False)
    s.create_patient("P1", None)
    scan, _, _ = save(s)
    assert scan.frame_path is None and scan.image_path is not None


def test_review_and_override_record_user_and_role(store):
    scan, _, _ = save(store)
    store.override_grade(scan.id, Sign.ERYTHEMA, 3, "ann", "staff")
    done = store.confirm_review(scan.id, "bob", "admin")
    assert done.overrides[Sign.ERYTHEMA].role == "staff"
    assert (done.reviewed.user, done.reviewed.role, done.reviewed.at) == (
        "bob", "admin", T0.isoformat(timespec="seconds"))


def test_purge_removes_frames_and_orphan_sweep_keeps_named_frames(store):
    scan, _, _ = save(store)
    frame_file = store.data_dir / scan.frame_path
    old = (T0 - dt.timedelta(days=2)).timestamp()
    os.utime(frame_file, (old, old))  # older than the orphan grace: only its row protects it
    assert store.purge_expired(T0) == 0 and frame_file.exists()
    assert store.purge_expired(T0 + dt.timedelta(days=31)) == 2
    assert not frame_file.exists() and store.get_scan(scan.id).frame_path is None


def test_version_1_database_is_migrated(tmp_path):
    s = Store(tmp_path, clock=lambda: T0)
    s.create_patient("P1", 1990)
    reviewed, _, _ = save(s)
    untouched, _, _ = save(s, seed=1)
    s.override_grade(reviewed.id, Sign.EXCORIATION, 2, "ann")
    s.close()
    make_older(tmp_path, 1, *(drop_column(name) for name, _ in V2_COLUMNS))
    s = Store(tmp_path, clock=lambda: T0)
    assert s._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert s.get_scan(reviewed.id).reviewed.user == "ann"  # overridden: someone reviewed it
    assert s.get_scan(untouched.id).reviewed is None
    assert s.get_scan(untouched.id).frame_path is None
    s.close()
