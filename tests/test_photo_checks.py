"""The device on photos unlike its synthetic frames: the non-skin quality gate, the
auto crop's keep-off rules (face features, overlays, background) and face blurring.
Every image is made here: synthetic skin, a fur-like texture, drawn text."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.cameras.synthetic import render_skin_frame
from device.config import CropConfig, CropMode, QualityConfig
from device.vision.avoid import MAX_OVERLAY_IN_CROP, AvoidMasks, overlay_mask
from device.vision.crop import auto_box, iou
from device.vision.faces import Faces, blur_faces, face_from_eyes, find_faces
from device.vision.frameviews import WORK_SIDE, shrink, skin_mask
from device.vision.quality import QualityIssue, check_quality, confirm_skin

AUTO = CropConfig(mode=CropMode.AUTO)


def skin_frame(seed: int, width: int = 640, height: int = 480):
    return render_skin_frame(np.random.default_rng(seed), width, height)


def fur(seed: int = 0, width: int = 640, height: int = 480) -> np.ndarray:
    """A ginger-cat-like texture: skin-range colours, dense fine strands."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32) + np.array([205, 135, 80], np.float32)
    for _ in range(14000):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        angle = rng.normal(0.6, 0.25)
        length = rng.uniform(6, 16)
        x2, y2 = int(x + length * np.cos(angle)), int(y + length * np.sin(angle))
        shade = rng.uniform(0.4, 1.4)
        colour = tuple(float(c) for c in np.clip(np.array([205, 135, 80]) * shade, 0, 255))
        cv2.line(img, (x, y), (x2, y2), colour, 2, cv2.LINE_AA)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_skin_passes_and_fur_coloured_like_skin_is_refused():
    config = QualityConfig()
    frame, _ = skin_frame(1)
    report = check_quality(frame, config, faces=Faces())
    assert report.ok, report.reasons
    cat = fur()
    measures = check_quality(cat, config).measures
    assert measures.skin_fraction >= config.min_skin_fraction  # colour alone passes it
    report = check_quality(cat, config, faces=Faces())
    assert not report.ok and report.issues == [QualityIssue.NOT_SKIN]
    assert "fur" in report.reasons[0]


def test_a_cat_face_refuses_the_photo_and_a_person_face_does_not():
    frame, _ = skin_frame(2)
    cat = check_quality(frame, QualityConfig(), faces=Faces(cats=[(10, 10, 200, 200)]))
    assert not cat.ok and "animal" in cat.reasons[0]
    both = check_quality(frame, QualityConfig(),
                         faces=Faces(faces=[(10, 10, 200, 200)], cats=[(10, 10, 200, 200)]))
    assert both.ok


def test_abstention_on_little_skin_becomes_a_not_skin_refusal():
    config = QualityConfig(min_skin_fraction=0.25)
    frame, _ = skin_frame(3)
    frame[:, 300:] = (40, 90, 160)  # half the photo is a blue object
    report = check_quality(frame, config, faces=Faces())
    assert report.ok and report.measures.skin_fraction < 0.5
    refused = confirm_skin(report, config)
    assert not refused.ok and refused.issues == [QualityIssue.NOT_SKIN]
    full, _ = skin_frame(3)
    report = check_quality(full, config, faces=Faces())
    assert confirm_skin(report, config) is report  # mostly skin: staff grade it


def test_auto_crop_keeps_off_eyes_nostrils_and_lips():
    frame, lesion = skin_frame(4)
    plain = auto_box(frame, AUTO)
    assert not plain.fallback and iou(plain.box, lesion) > 0.3
    x, y, w, h = lesion
    # A face whose left cheek holds the lesion: its eyes, nose and lips are beside it.
    fw = int(w * 3.6)
    cheek = Faces(faces=[(x - fw // 50, y - int(fw * 0.55), fw, fw)])
    avoided = auto_box(frame, AUTO, faces=cheek)
    assert not avoided.fallback, avoided.reason
    assert not any(_overlap(avoided.box, z) for z in cheek.zones())
    assert _overlap(avoided.box, lesion)
    # A face whose nose covers the whole lesion: nothing qualifies, and it says so.
    nose = Faces(faces=[(x - w, y - h, 3 * w, 2 * h)])
    assert any(_overlap(lesion, z) for z in nose.zones())
    unsure = auto_box(frame, AUTO, faces=nose)
    assert unsure.fallback and "unsure" in unsure.reason
    assert unsure.mode is CropMode.GUIDE


def _overlap(a, b) -> bool:
    return (min(a[0] + a[2], b[0] + b[2]) > max(a[0], b[0])
            and min(a[1] + a[3], b[1] + b[3]) > max(a[1], b[1]))


def test_auto_crop_keeps_off_text_overlays():
    frame, lesion = skin_frame(5, 800, 600)
    lx, ly, lw, lh = lesion
    # A watermark: white text with a dark edge, far from the lesion.
    tx, ty = (40, 560) if ly < 300 else (40, 60)
    for colour, width in (((20, 20, 20), 7), ((250, 250, 250), 3)):
        cv2.putText(frame, "DermLogo 2026", (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, 1.6, colour,
                    width, cv2.LINE_AA)
    text_box = (tx, ty - 45, 420, 60)
    small = shrink(frame, WORK_SIDE)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    marks = overlay_mask(lab)
    s = small.shape[0] / frame.shape[0]
    tb = [int(v * s) for v in text_box]
    assert marks[tb[1]:tb[1] + tb[3], tb[0]:tb[0] + tb[2]].mean() > 0.3  # the text is found
    assert marks.mean() < 0.2  # and the skin is not
    crop = auto_box(frame, AUTO)
    x, y, w, h = (int(v * s) for v in crop.box)
    assert marks[y:y + h, x:x + w].mean() <= MAX_OVERLAY_IN_CROP
    assert not _overlap(crop.box, text_box)


def test_a_square_must_be_mostly_skin():
    skin = np.zeros((100, 100), bool)
    skin[:, :60] = True
    masks = AvoidMasks(zones=np.zeros_like(skin), overlay=np.zeros_like(skin), skin=skin)
    assert masks.square_ok((0, 0, 50, 50))[0]
    ok, why = masks.square_ok((30, 0, 50, 50))  # 60 % skin
    assert not ok and "skin" in why


def test_two_eyes_imply_the_face_around_them():
    left, right = (100, 100, 30, 20), (170, 104, 32, 20)
    fx, fy, fw, fh = face_from_eyes(left, right)
    assert fx < left[0] and fx + fw > right[0] + right[2] and fy < left[1]


def test_no_face_is_found_on_plain_skin():
    frame, _ = skin_frame(6)
    assert find_faces(frame).faces == []


def test_blur_faces_blurs_outside_the_crop_and_keeps_the_crop_exactly():
    frame, _ = skin_frame(7)
    cv2.putText(frame, "ID 12345", (60, 160), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (10, 10, 10), 3)
    face = Faces(faces=[(40, 80, 240, 240)])
    keep = (200, 200, 120, 120)
    out = blur_faces(frame, keep, faces=face)
    x, y, w, h = keep
    assert np.array_equal(out[y:y + h, x:x + w], frame[y:y + h, x:x + w])
    region = (slice(100, 190), slice(50, 190))  # in the face, outside the crop
    grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[region]
    before = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[region]
    assert cv2.Laplacian(grey, cv2.CV_64F).var() < 0.05 * cv2.Laplacian(before, cv2.CV_64F).var()
    assert np.array_equal(out[400:, 400:], frame[400:, 400:])  # away from the face: untouched


@pytest.mark.parametrize("seed", range(6))
def test_auto_crop_still_finds_synthetic_lesions(seed):
    frame, lesion = skin_frame(10 + seed)
    crop = auto_box(frame, AUTO)
    assert not crop.fallback and iou(crop.box, lesion) >= 0.3
    small = shrink(frame, WORK_SIDE)
    s = small.shape[0] / frame.shape[0]
    x, y, w, h = (int(v * s) for v in crop.box)
    assert skin_mask(small)[y:y + h, x:x + w].mean() >= 0.8


def test_vivid_red_paint_is_not_skin_though_its_colour_range_says_so():
    door = np.zeros((480, 640, 3), np.uint8)
    door[:] = (160, 60, 30)  # orange-red paint
    rng = np.random.default_rng(0)
    door = np.clip(door + rng.normal(0, 6, door.shape), 0, 255).astype(np.uint8)
    assert skin_mask(door).mean() > 0.8  # the YCrCb range alone takes it for skin
    report = check_quality(door, QualityConfig(), faces=Faces())
    assert not report.ok and report.issues == [QualityIssue.NOT_SKIN]
    assert report.measures.skin_fraction < 0.05
