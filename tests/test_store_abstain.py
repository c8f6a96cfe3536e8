"""The store keeps that the models abstained (with the score), migrates schema-2
databases, and blurs faces in kept full frames outside the crop box."""

from __future__ import annotations

import datetime as dt

import cv2
import numpy as np
from store_support import drop_column, make_older, one_scan_store

import device.vision.faces as faces_module
from device.core.vocab import Region
from device.store import Store
from device.store.schema import SCHEMA_VERSION, V4_COLUMNS, Capture
from device.vision.faces import Faces

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.timezone.utc)


def frame(seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (3, 3), 0)


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_an_abstained_scan_is_saved_without_model_grades(tmp_path):
    s = Store(tmp_path, clock=lambda: T0)
    s.create_patient("P1", 1990)
    visit = s.open_visit("P1")
    scan = s.save_region_scan(visit.id, Region.TRUNK, pack_version="1.0",
                              capture=Capture(frame=frame(), box=(10, 10, 64, 64),
                                              abstained=True, abstention_score=2.5))
    again = s.get_scan(scan.id)
    assert again.abstained is True and again.abstention_score == 2.5
    assert all(g is None for g in again.model_grades.values())
    assert again.to_dict()["abstained"] is True
    graded = s.save_region_scan(visit.id, Region.HEAD_NECK, capture=Capture(frame=frame()))
    assert graded.abstained is False and graded.abstention_score is None
    s.close()


def test_a_version_3_database_gains_the_abstention_columns(tmp_path):
    old = one_scan_store(tmp_path, clock=lambda: T0)
    make_older(tmp_path, 3, *(drop_column(name) for name, _ in V4_COLUMNS))
    s = Store(tmp_path, clock=lambda: T0)
    assert s._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 4
    assert s.get_scan(old.id).abstained is False
    s.close()


def test_faces_in_the_kept_frame_are_blurred_outside_the_crop(tmp_path, monkeypatch):
    face = (20, 20, 200, 200)
    monkeypatch.setattr(faces_module, "find_faces", lambda rgb, **_: Faces(faces=[face]))
    full = frame(1)
    box = (120, 120, 80, 80)
    crop = full[120:200, 120:200].copy()
    for blur, name in ((True, "blurred"), (False, "plain")):
        s = Store(tmp_path / name, clock=lambda: T0, redact_frame=faces_module.blur_faces if blur else None)
        s.create_patient("P1", 1990)
        scan = s.save_region_scan(s.open_visit("P1").id, Region.HEAD_NECK, image=crop,
                                  capture=Capture(frame=full, box=box))
        kept = read_rgb(s.data_dir / scan.frame_path)
        outside = cv2.cvtColor(kept[30:110, 30:110], cv2.COLOR_RGB2GRAY)
        sharp = cv2.Laplacian(outside, cv2.CV_64F).var()
        original = cv2.Laplacian(cv2.cvtColor(full[30:110, 30:110], cv2.COLOR_RGB2GRAY),
                                 cv2.CV_64F).var()
        if blur:
            assert sharp < 0.05 * original
            # Inside the crop box the frame keeps its detail (JPEG-encoded), and the
            # crop file is exact.
            inside = cv2.cvtColor(kept[128:192, 128:192], cv2.COLOR_RGB2GRAY)
            before = cv2.cvtColor(full[128:192, 128:192], cv2.COLOR_RGB2GRAY)
            assert (cv2.Laplacian(inside, cv2.CV_64F).var()
                    > 0.3 * cv2.Laplacian(before, cv2.CV_64F).var())
        else:
            assert sharp > 0.3 * original
        assert np.array_equal(read_rgb(s.image_file(scan)), crop)
        s.close()
