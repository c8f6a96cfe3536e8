"""Image quality check: each failure has a reason and a retake hint; thresholds from config."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.cameras import SyntheticCamera
from device.config import QualityConfig
from device.vision.faces import Faces
from device.vision.quality import QualityIssue, QualityMeasures, check_quality

CONFIG = QualityConfig()


@pytest.fixture(scope="module")
def good():
    return SyntheticCamera(640, 480, seed=2).read()


def test_a_good_photo_passes(good):
    report = check_quality(good, CONFIG)
    assert report.ok and report.reasons == [] and report.issues == []
    assert set(report.measures.to_dict()) == {"brightness", "sharpness", "size", "skin_fraction",
                                              "skin_texture"}
    assert report.measures.faces is None and report.measures.size == 480.0
    d = report.to_dict()
    assert d["ok"] is True and isinstance(d["measures"]["sharpness"], float)


def test_measures_are_typed_and_count_faces_only_when_looked_for(good):
    looked = check_quality(good, CONFIG, faces=Faces(faces=[(10, 10, 50, 50)]))
    assert isinstance(looked.measures, QualityMeasures)
    assert (looked.measures.faces, looked.measures.cat_faces) == (1, 0)
    assert looked.to_dict()["measures"]["faces"] == 1.0
    assert "faces" not in check_quality(good, CONFIG).to_dict()["measures"]


def _only(report, issue):
    assert not report.ok
    assert report.issues == [issue], report.reasons
    assert "Please" in report.reasons[0] and "retake" in report.reasons[0]


def test_too_dark(good):
    report = check_quality((good * 0.15).astype(np.uint8), QualityConfig(min_sharpness=0))
    assert not report.ok and report.issues[0] is QualityIssue.TOO_DARK
    assert "too dark" in report.reasons[0] and "more light" in report.reasons[0]
    assert check_quality((good * 0.15).astype(np.uint8),
                         QualityConfig(min_sharpness=0, min_brightness=10,
                                       min_skin_fraction=0)).ok


def test_too_bright(good):
    bright = np.clip(good.astype(int) + 120, 0, 255).astype(np.uint8)
    report = check_quality(bright, QualityConfig(min_skin_fraction=0))
    assert QualityIssue.TOO_BRIGHT in report.issues
    assert "too bright" in report.reasons[report.issues.index(QualityIssue.TOO_BRIGHT)]


def test_blurred(good):
    blurred = cv2.GaussianBlur(good, (0, 0), 4)
    _only(check_quality(blurred, CONFIG), QualityIssue.BLURRED)
    # the threshold comes from the config
    assert check_quality(blurred, QualityConfig(min_sharpness=0)).ok


def test_too_small(good):
    small = cv2.resize(good, (60, 45), interpolation=cv2.INTER_AREA)
    report = check_quality(small, CONFIG)
    assert QualityIssue.TOO_SMALL in report.issues
    assert check_quality(small, QualityConfig(min_size=40, min_sharpness=0)).ok


def test_mostly_not_skin(good):
    blue = good.copy()
    blue[:, :520] = (40, 90, 200)
    _only(check_quality(blue, CONFIG), QualityIssue.NOT_SKIN)


def test_every_failure_is_listed_at_once():
    tiny_dark_blue = np.zeros((20, 20, 3), np.uint8) + np.array([5, 5, 30], np.uint8)
    report = check_quality(tiny_dark_blue, CONFIG)
    assert set(report.issues) == {QualityIssue.TOO_SMALL, QualityIssue.TOO_DARK,
                                  QualityIssue.BLURRED, QualityIssue.NOT_SKIN}
    assert len(report.reasons) == 4


def test_laplacian_variance_is_the_exact_variance_of_the_laplacian():
    from fractions import Fraction

    from device.vision.quality import laplacian_variance

    rng = np.random.default_rng(4)
    for grey in (rng.integers(0, 256, (48, 64), dtype=np.uint8),
                 np.full((20, 30), 7, np.uint8), np.eye(16, dtype=np.uint8) * 255):
        lap = cv2.Laplacian(grey, cv2.CV_64F)
        values = [int(v) for v in lap.ravel()]
        n = len(values)
        exact = Fraction(sum(v * v for v in values), n) - Fraction(sum(values), n) ** 2
        assert laplacian_variance(grey) == float(exact)
        assert np.isclose(laplacian_variance(grey), lap.var(), rtol=1e-12, atol=1e-12)
