"""The scan path's fast stand-ins give exactly what the plain numpy they replaced gave:
each is checked here against the straightforward formula written out, on random
inputs and on synthetic photos' working views (packs' statistics and the crop's
thresholds were fitted with the plain values)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.cameras import SyntheticCamera
from device.grading import imagestats
from device.vision.avoid import ACHROMATIC_CHROMA, SHARP_EDGE, _with_logo_room, overlay_mask
from device.vision.crop import (
    ROUGH_CODE,
    body_mask,
    lesion_score_map,
    refine_square,
    region_extent,
    rough_surface,
)
from device.vision.frameviews import FrameViews, hypot, scaled_median, skin_mask
from device.vision.quality import measure

RNG = np.random.default_rng(11)


def _views() -> list[FrameViews]:
    frames = [SyntheticCamera(w, h, seed=s).read() for (w, h), s in
              (((1024, 768), 2), ((640, 480), 4), ((300, 220), 9))]
    frames.append(RNG.integers(0, 256, (400, 600, 3), dtype=np.uint8))
    return [FrameViews.of(f) for f in frames]


VIEWS = _views()


def test_hypot_is_numpys_to_the_bit():
    for scale in (1e-3, 1.0, 30.0, 1e4):
        x, y = (RNG.standard_normal((300, 200)).astype(np.float32) * scale for _ in range(2))
        x[0, :4], y[0, :4] = 0.0, (0.0, -1.0, 3.0, 1e-30)
        assert np.array_equal(hypot(x, y), np.hypot(x, y))
    for views in VIEWS:
        lab = views.lab
        assert np.array_equal(hypot(lab[..., 1], lab[..., 2]), np.hypot(lab[..., 1], lab[..., 2]))


def test_scaled_median_is_numpys_median():
    for n in (1, 2, 3, 4, 5, 100, 101, 4097):
        for high in (1, 3, 256):
            codes = RNG.integers(0, high, n).astype(np.uint8)
            plain = float(np.median(codes.astype(np.float32) * (1 / ROUGH_CODE)))
            assert scaled_median(codes, 1 / ROUGH_CODE) == plain
            assert scaled_median(codes, 0.37) == float(np.median(codes.astype(np.float32) * 0.37))


def _plain_body_mask(lab: np.ndarray) -> np.ndarray:
    """body_mask as it was written before its distances were taken channel by channel."""
    h, w = lab.shape[:2]
    centre = lab[int(h * 0.3):int(h * 0.7), int(w * 0.3):int(w * 0.7)].reshape(-1, 3)
    diff = lab - np.median(centre, axis=0)
    dist = np.sqrt(0.25 * diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2)
    dist8 = np.clip(dist * 4, 0, 255).astype(np.uint8)
    level, _ = cv2.threshold(dist8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    near = (dist8 <= max(level, 24.0)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    count, labels = cv2.connectedComponents(cv2.morphologyEx(near, cv2.MORPH_OPEN, kernel))
    if count <= 1:
        return np.zeros((h, w), bool)
    label = labels[h // 2, w // 2] or 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    body = (labels == label).astype(np.uint8)
    contours, _ = cv2.findContours(body, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(body)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return cv2.erode(filled, kernel, iterations=2).astype(bool)


def _plain_score_map(lab: np.ndarray, body: np.ndarray) -> np.ndarray:
    """lesion_score_map with np.median over the float roughness, as it was."""
    light, a_star = lab[..., 0], lab[..., 1]
    ref = float(np.median(a_star[body]))
    redness = np.clip((a_star - ref) / 6.0, 0, 4)
    roughness = rough_surface(light)
    tex_ref = float(np.median(roughness[body]))
    texture = np.clip((roughness - tex_ref) / (tex_ref + 0.5), 0, 4)
    return cv2.GaussianBlur(redness + texture, (5, 5), 0) * body


def _plain_overlay(lab: np.ndarray) -> np.ndarray:
    """overlay_mask with np.hypot on the channels taken in place, as it was."""
    light = lab[..., 0]
    gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3) / 4
    gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3) / 4
    grey = (np.hypot(lab[..., 1], lab[..., 2]) < ACHROMATIC_CHROMA).astype(np.uint8)
    marks = np.hypot(gx, gy) > SHARP_EDGE
    marks &= cv2.dilate(grey, np.ones((3, 3), np.uint8)).astype(bool)
    dense = cv2.blur(marks.astype(np.float32), (7, 7)) > 0.12
    return _with_logo_room(cv2.dilate(dense.astype(np.uint8), np.ones((5, 5), np.uint8)))


@pytest.mark.parametrize("index", range(len(VIEWS)))
def test_crop_ground_matches_the_plain_formulas(index):
    lab = VIEWS[index].lab
    body = body_mask(lab)
    assert np.array_equal(body, _plain_body_mask(lab))
    if body.any():
        assert np.array_equal(lesion_score_map(lab, body), _plain_score_map(lab, body))
    assert np.array_equal(overlay_mask(lab), _plain_overlay(lab))


def test_overlay_matches_the_plain_formula_on_marks():
    """A grey ruler with ticks on skin: marks are found, and found as before."""
    rgb = np.full((192, 256, 3), (205, 150, 130), np.uint8)
    rgb[20:50, 30:220] = 235
    rgb[20:35, 40:210:6] = 40
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    overlay = overlay_mask(lab)
    assert overlay[20:35, 40:210].mean() > 0.5 and not overlay[120:, :].any()
    assert np.array_equal(overlay, _plain_overlay(lab))


@pytest.mark.parametrize("index", range(len(VIEWS)))
def test_brightness_is_numpys_mean(index):
    views = VIEWS[index]
    assert measure(views.preview, views=views).brightness == float(views.preview_grey.mean())


def _plain_lbp(gray: np.ndarray) -> np.ndarray:
    """The riu2 histogram counted bit by bit around the circle."""
    centre = gray[1:-1, 1:-1]
    h, w = gray.shape
    bits = [gray[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] >= centre + imagestats.LBP_TOLERANCE
            for dy, dx in imagestats._NEIGHBOURS]
    ones, changes = np.zeros(centre.shape, np.int32), np.zeros(centre.shape, np.int32)
    for i, b in enumerate(bits):
        ones += b
        changes += b != bits[(i + 1) % 8]
    hist = np.bincount(np.where(changes <= 2, ones, 9).ravel(), minlength=10).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def test_lbp_by_table_matches_counting_bits():
    for shape in ((3, 3), (12, 17), (96, 96)):
        for spread in (0.4, 3.0, 100.0):  # near-flat (ties within the tolerance) to busy
            gray = (RNG.random(shape) * spread).astype(np.float32)
            assert np.array_equal(imagestats._lbp_riu2(gray), _plain_lbp(gray))
    for views in VIEWS:
        light = np.ascontiguousarray(views.lab[..., 0])
        assert np.array_equal(imagestats._lbp_riu2(light), _plain_lbp(light))


def test_skin_mask_in_one_pass_is_the_five_comparisons():
    rgb = RNG.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    rgb[:256] = RNG.integers((120, 60, 40), (256, 200, 180), (256, 512, 3))  # skin tones
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    plain = (y > 30) & (cr >= 133) & (cr <= 185) & (cb >= 70) & (cb <= 135)
    assert plain[:256].mean() > 0.2 and np.array_equal(skin_mask(rgb), plain)
    for channel, bounds in ((y, (30, 31)), (cr, (132, 133, 185, 186)), (cb, (69, 70, 135, 136))):
        assert all((channel == b).any() for b in bounds)  # every bound is met on both sides


def test_region_extent_is_the_plain_extent():
    rng = np.random.default_rng(5)
    grown = 0
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(60, 200, 2))
        score = np.zeros((h, w), np.float32)
        for _blob in range(int(rng.integers(1, 4))):
            cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(5, 40)
            cv2.circle(score, (int(cx), int(cy)), int(r), float(rng.uniform(0.5, 3)), -1)
        score = cv2.GaussianBlur(score + rng.random((h, w)).astype(np.float32) * 0.3, (7, 7), 0)
        side = int(rng.integers(8, min(h, w) // 2))
        box = (int(rng.integers(0, w - side)), int(rng.integers(0, h - side)), side, side)
        contrast = float(rng.uniform(0.1, 1.5))
        _, labels = cv2.connectedComponents((score > score.mean()).astype(np.uint8))
        for label in range(1, int(labels.max()) + 1):
            ys, xs = np.nonzero(labels == label)
            assert region_extent(labels, label) == (xs.min(), ys.min(), xs.max() + 1,
                                                    ys.max() + 1)
        refined = refine_square(score, box, contrast)
        grown += refined != box
    assert grown >= 5  # the regions' extents were used, not only the square kept
