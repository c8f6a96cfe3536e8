"""Which region the auto crop chooses when a photo holds more than one candidate:
a whole inflamed patch over a small dark spot, a rough red lesion over a face's
smooth lips and dark eyes. Every image is drawn here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.config import CropConfig, CropMode
from device.vision.avoid import avoid_masks, hair_mask, lip_zones, zones_mask
from device.vision.crop import auto_box, best_square, iou
from device.vision.faces import Faces, dark_eye_pairs
from device.vision.frameviews import WORK_SIDE, shrink, skin_mask

AUTO = CropConfig(mode=CropMode.AUTO)
SKIN = np.array([225, 180, 150], np.float32)


def plain_skin(rng: np.random.Generator, height: int = 300, width: int = 400) -> np.ndarray:
    return np.zeros((height, width, 3), np.float32) + SKIN + rng.normal(0, 2, (height, width, 3))


def add_patch(img: np.ndarray, rng: np.random.Generator, centre: tuple[int, int], radius: int,
              shift: tuple[float, float, float], rough: float) -> tuple[int, int, int, int]:
    """A round inflamed patch (colour ``shift``, grainy by ``rough``); returns its box."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < radius ** 2
    grain = rng.normal(0, rough, (h, w)) if rough else np.zeros((h, w))
    img[inside] += np.array(shift, np.float32) + grain[inside, None]
    return (centre[0] - radius, centre[1] - radius, 2 * radius, 2 * radius)


def test_a_whole_mild_patch_beats_a_small_dark_spot():
    """A mole-sized dark spot scores higher per pixel than a mildly inflamed patch; the
    crop compares squares by contrast x side and so takes the patch."""
    rng = np.random.default_rng(1)
    img = plain_skin(rng)
    patch = add_patch(img, rng, (130, 160), 70, (3, -14, -9), rough=9)
    cv2.circle(img, (330, 60), 13, (150, 90, 80), -1, cv2.LINE_AA)
    result = auto_box(np.clip(img, 0, 255).astype(np.uint8), AUTO)
    assert not result.fallback, result.reason
    assert iou(result.box, patch) >= 0.5, result.box


def drawn_face(rng: np.random.Generator, lesion_rough: float = 9.0):
    """A close-up of a face running past the frame (no face detector fires on it): two
    eyes with dark lashes, a nose with nostrils, red lips with the mouth's dark slit,
    and an eczema-like patch on the cheek, rough and less red than the lips. Returns
    the image, the lips' box and the patch's box."""
    img = plain_skin(rng, 360, 480)
    for cx in (150, 330):  # eyes: white, iris, lash line
        cv2.ellipse(img, (cx, 70), (42, 18), 0, 0, 360, (240, 235, 230), -1, cv2.LINE_AA)
        cv2.circle(img, (cx, 70), 13, (70, 50, 40), -1, cv2.LINE_AA)
        cv2.ellipse(img, (cx, 70), (44, 19), 0, 180, 360, (40, 30, 25), 3, cv2.LINE_AA)
    for cx in (222, 258):  # nostrils
        cv2.ellipse(img, (cx, 190), (11, 6), 0, 0, 360, (120, 70, 60), -1, cv2.LINE_AA)
    cv2.ellipse(img, (240, 270), (75, 28), 0, 0, 360, (210, 120, 120), -1, cv2.LINE_AA)
    cv2.line(img, (170, 270), (310, 270), (110, 45, 50), 3, cv2.LINE_AA)
    lips = (165, 242, 150, 56)
    patch = add_patch(img, rng, (400, 250), 45, (2, -20, -12), rough=lesion_rough)
    return np.clip(img, 0, 255).astype(np.uint8), lips, patch


def test_on_a_face_close_up_the_crop_takes_the_patch_not_the_lips():
    rng = np.random.default_rng(3)
    img, lips, patch = drawn_face(rng)
    result = auto_box(img, AUTO)  # no faces handed in: the detector missed this face
    assert not result.fallback, result.reason
    assert not _overlap(result.box, lips), (result.box, lips)
    assert iou(result.box, patch) >= 0.3, (result.box, patch)


def test_lips_are_found_by_colour_and_a_dark_mole_is_not():
    rng = np.random.default_rng(4)
    img, lips, _ = drawn_face(rng)
    small = shrink(img, WORK_SIDE)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    s = small.shape[0] / img.shape[0]
    found = lip_zones(lab, skin_mask(small))
    assert len(found) == 1
    scaled = tuple(int(v * s) for v in lips)
    x, y, w, h = found[0]
    assert x <= scaled[0] + 2 and x + w >= scaled[0] + scaled[2] - 2  # the whole lips ...
    assert y < scaled[1] - scaled[3] // 2  # ... and the philtrum above them
    # The same shape painted as a brown mole (much darker than the skin) is no lips.
    mole = plain_skin(rng, 360, 480)
    cv2.ellipse(mole, (240, 270), (75, 28), 0, 0, 360, (120, 70, 50), -1, cv2.LINE_AA)
    cv2.line(mole, (170, 270), (310, 270), (60, 35, 25), 3, cv2.LINE_AA)
    small = shrink(np.clip(mole, 0, 255).astype(np.uint8), WORK_SIDE)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    assert lip_zones(lab, skin_mask(small)) == []


def test_a_meshed_face_keeps_only_its_landmarked_parts():
    """Dark eyes and red lips inside a face the mesh found are its own: the avoided
    zones are the mesh's parts, not the wider boxes from colour and proportions (which
    would take in the cheeks, where the lesion often is)."""
    img, lips, _ = drawn_face(np.random.default_rng(3))
    small = shrink(img, WORK_SIDE)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    scale = small.shape[0] / img.shape[0]
    parts = [(103, 48, 94, 44), (283, 48, 94, 44), (205, 175, 70, 30), lips]
    meshed = Faces(faces=[(0, 0, 480, 360)], eyes=parts[:2], parts=parts[2:])
    zones = avoid_masks(lab, skin_mask(small), meshed, scale).zones
    assert np.array_equal(zones, zones_mask(zones.shape, meshed, scale))
    # Without the mesh the same eyes and lips are found by darkness and colour.
    unmeshed = avoid_masks(lab, skin_mask(small), Faces(), scale).zones
    assert unmeshed.sum() > zones.sum()


def test_dark_hair_is_not_skin_for_the_crop():
    """Brown hair is skin-coloured in YCrCb, only far darker: the crop counts it as not
    skin, so a square on a hairline breaks the skin rule; a red patch is still skin."""
    rng = np.random.default_rng(9)
    img = plain_skin(rng, 360, 480)
    img[:90] = (95, 62, 45) + rng.normal(0, 6, (90, 480, 3))  # a fringe of brown hair
    patch = add_patch(img, rng, (300, 250), 50, (0, -25, -15), rough=6)
    small = shrink(np.clip(img, 0, 255).astype(np.uint8), WORK_SIDE)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    skin = skin_mask(small)
    s = small.shape[0] / img.shape[0]
    hair_rows = int(90 * s)
    assert skin[:hair_rows - 1].mean() > 0.95  # the colour range alone takes hair for skin
    hair = hair_mask(lab, skin)
    assert hair[:hair_rows - 1].mean() > 0.95 and not hair[hair_rows + 1:].any()
    masks = avoid_masks(lab, skin, Faces(), s)
    side = int(60 * s)
    assert masks.square_ok((40, hair_rows - side // 2, side, side)) == (False, "less than 80% skin")
    px, py, pw, _ = (int(v * s) for v in patch)
    assert masks.square_ok((px + pw // 4, py + pw // 4, pw // 2, pw // 2))[0]


def _overlap(a, b) -> bool:
    return (min(a[0] + a[2], b[0] + b[2]) > max(a[0], b[0])
            and min(a[1] + a[3], b[1] + b[3]) > max(a[1], b[1]))


def test_best_square_takes_the_wide_patch_and_reports_the_sharpest_contrast():
    """The chosen square is the wide patch (contrast x side); whether anything stands
    out at all is judged by the most contrasted square, the small spot's."""
    score = np.zeros((192, 256), np.float32)
    score[40:140, 20:120] = 1.0   # a wide, mild patch
    score[150:170, 200:220] = 4.0  # a small, sharp spot
    body = np.ones_like(score, bool)
    box, value, peak = best_square(score, body)
    assert iou(box, (20, 40, 100, 100)) >= 0.5, box
    assert peak > 2.0 and value < peak


def closed_eyes_face(rng: np.random.Generator):
    """A close-up with closed eyes (dark lash lines under inflamed, rough lids) and a
    milder patch on the cheek; no face detector fires on it. Returns the image, the
    two eyes' boxes (lids and lashes) and the patch's box."""
    img = plain_skin(rng, 360, 480)
    eyes = []
    for cx in (140, 340):
        add_patch(img, rng, (cx, 70), 50, (0, -32, -20), rough=12)  # eyelid eczema
        cv2.ellipse(img, (cx, 100), (48, 12), 0, 0, 180, (85, 45, 35), 3, cv2.LINE_AA)
        eyes.append((cx - 50, 20, 100, 95))
    patch = add_patch(img, rng, (400, 285), 45, (1, -12, -8), rough=7)
    return np.clip(img, 0, 255).astype(np.uint8), eyes, patch


@pytest.mark.parametrize("face", ["open", "closed"])
def test_eyes_are_found_by_darkness_when_no_detector_fires(face):
    rng = np.random.default_rng(6)
    img, eyes = (drawn_face(rng)[0], [(105, 50, 90, 40), (285, 50, 90, 40)]) if face == "open" \
        else closed_eyes_face(rng)[:2]
    small = shrink(img, WORK_SIDE)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    pairs = dark_eye_pairs(lab[..., 0], skin_mask(small))
    assert len(pairs) == 1
    s = small.shape[0] / img.shape[0]
    for found, truth in zip(pairs[0], eyes, strict=True):
        assert _overlap(found, tuple(int(v * s) for v in truth))


def test_dark_scratches_and_crusts_are_not_eyes():
    rng = np.random.default_rng(7)
    img = plain_skin(rng, 360, 480)
    for _ in range(40):  # short dark scratches and crusts, any direction
        x, y = (int(v) for v in rng.integers((20, 20), (460, 340)))
        angle, length = rng.uniform(0, np.pi), rng.uniform(5, 30)
        end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
        cv2.line(img, (x, y), end, (110, 60, 50), int(rng.integers(2, 5)), cv2.LINE_AA)
    small = shrink(np.clip(img, 0, 255).astype(np.uint8), WORK_SIDE)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    assert dark_eye_pairs(lab[..., 0], skin_mask(small)) == []


def test_the_crop_keeps_off_closed_eyes_with_inflamed_lids():
    img, eyes, patch = closed_eyes_face(np.random.default_rng(8))
    result = auto_box(img, AUTO)
    assert not result.fallback, result.reason
    assert not any(_overlap(result.box, e) for e in eyes), (result.box, eyes)
    assert iou(result.box, patch) >= 0.3, (result.box, patch)


def test_part_boxes_are_the_connected_components_boxes():
    """The overlay's lettering boxes come from outlines; they must be exactly the boxes
    of connectedComponentsWithStats, parts nested in another's hole included."""
    from device.vision.avoid import _part_boxes

    rng = np.random.default_rng(8)
    masks = [(rng.random((60, 80)) < p).astype(np.uint8) for p in (0.02, 0.2, 0.5, 0.7)]
    ring = np.zeros((40, 40), np.uint8)
    cv2.rectangle(ring, (5, 5), (34, 34), 1, 2)
    ring[18:21, 18:21] = 1  # a part inside the ring's hole
    for mask in [*masks, ring, np.zeros((10, 10), np.uint8)]:
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        expected = sorted(tuple(int(v) for v in row[:4]) for row in stats[1:count])
        assert sorted(_part_boxes(mask)) == expected
