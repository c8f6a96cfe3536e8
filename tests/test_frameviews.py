"""The frame looked at once (device.vision.frameviews): the shared views give exactly what
each stage computed for itself before, checked against a straightforward per-stage
computation written out here."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from device.cameras import SyntheticCamera
from device.config import CropConfig, CropMode, QualityConfig
from device.vision.avoid import MAX_OVERLAY_IN_CROP, MIN_SKIN_IN_CROP, AvoidMasks
from device.vision.crop import auto_box, best_square, choose_crop
from device.vision.faces import Faces
from device.vision.frameviews import MEASURE_SIDE, FrameViews, shrink, skin_mask
from device.vision.hints import HintEngine
from device.vision.quality import check_quality

AUTO = CropConfig(mode=CropMode.AUTO)


def _frames() -> list[np.ndarray]:
    """Synthetic lesion photos at a large, a preview-sized and a small size, plus a
    frame that is not skin at all."""
    out = []
    for (w, h), seed in (((1024, 768), 3), ((640, 480), 5), ((300, 220), 8)):
        cam = SyntheticCamera(w, h, seed=seed)
        out += [cam.read(), cam.read()]
    rng = np.random.default_rng(0)
    out.append(rng.integers(0, 255, (400, 600, 3), dtype=np.uint8))
    return out


FRAMES = _frames()


def _reference_measures(rgb: np.ndarray) -> dict[str, float]:
    """The quality measures as each one was computed on its own copy."""
    small = shrink(rgb, MEASURE_SIDE)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    tiny = shrink(small, 192)
    saturation = cv2.cvtColor(tiny, cv2.COLOR_RGB2HSV)[..., 1]
    plain = skin_mask(tiny) & (saturation <= 178)
    skin = skin_mask(tiny)
    texture = 0.0
    if skin.sum() >= 16:
        g = cv2.cvtColor(tiny, cv2.COLOR_RGB2GRAY).astype(np.float32)
        detail = g - cv2.GaussianBlur(g, (0, 0), 1.5)
        energy = np.sqrt(np.maximum(cv2.blur(detail * detail, (5, 5)), 0))
        texture = float(100.0 * np.median(energy[skin]) / max(float(g[skin].mean()), 1.0))
    return {"brightness": float(grey.mean()),
            "sharpness": _exact_variance(cv2.Laplacian(grey, cv2.CV_64F)),
            "size": float(min(rgb.shape[:2])), "skin_fraction": float(plain.mean()),
            "skin_texture": texture}


def _exact_variance(lap: np.ndarray) -> float:
    """The variance of whole numbers, exactly, rounded once (the blur measure; numpy's
    float variance can be an ulp off)."""
    values = lap.astype(np.int64).ravel()
    n = values.size
    return float(Fraction(int((values * values).sum()) * n - int(values.sum()) ** 2, n * n))


def _reference_best_square(score, body, avoid):
    """The square search over a full grid of corner indices, one sum at a time."""
    def sums(integral, x0, y0, x1, y1):
        return integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]

    h, w = score.shape
    integral, body_int = (cv2.integral(m.astype(np.float64)) for m in (score, body))
    rules = [cv2.integral(m.astype(np.float64)) for m in (avoid.zones, avoid.overlay, avoid.skin)]
    best, best_val, best_w, peak = (0, 0, 1, 1), -np.inf, -np.inf, -np.inf
    short = min(h, w)
    for frac in (0.12, 0.16, 0.2, 0.25, 0.3, 0.36, 0.43, 0.5, 0.6):
        side = max(4, int(round(short * frac)))
        if side >= short:
            continue
        stride = max(1, side // 8)
        ys, xs = np.meshgrid(np.arange(0, h - side + 1, stride),
                             np.arange(0, w - side + 1, stride), indexing="ij")
        x0, y0, x1, y1 = xs, ys, xs + side, ys + side
        area, m = side * side, side // 2
        in_sum, in_body = sums(integral, x0, y0, x1, y1), sums(body_int, x0, y0, x1, y1)
        box = (np.maximum(x0 - m, 0), np.maximum(y0 - m, 0), np.minimum(x1 + m, w),
               np.minimum(y1 + m, h))
        contrast = in_sum / area - (sums(integral, *box) - in_sum) / np.maximum(
            sums(body_int, *box) - in_body, 1)
        contrast[in_body < 0.9 * area] = -np.inf
        zones, overlay, skin = (sums(r, x0, y0, x1, y1) for r in rules)
        contrast[(zones > 0) | (overlay > MAX_OVERLAY_IN_CROP * area)
                 | (skin < MIN_SKIN_IN_CROP * area)] = -np.inf
        k = int(np.argmax(contrast))
        peak = max(peak, float(contrast.flat[k]))
        if contrast.flat[k] * side > best_w:
            best_w, best_val = contrast.flat[k] * side, float(contrast.flat[k])
            best = (int(x0.flat[k]), int(y0.flat[k]), side, side)
    return best, best_val, peak


@pytest.mark.parametrize("index", range(len(FRAMES)))
def test_the_views_are_what_each_stage_made_for_itself(index):
    frame = FRAMES[index]
    views = FrameViews.of(frame)
    preview = shrink(frame, MEASURE_SIDE)
    tiny = shrink(preview, 192)
    assert np.array_equal(views.preview, preview) and np.array_equal(views.tiny, tiny)
    assert np.array_equal(views.skin, skin_mask(tiny))
    lab = cv2.cvtColor(tiny.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    assert np.array_equal(views.lab, lab)
    assert views.skin is views.skin  # made once, then kept


@pytest.mark.parametrize("index", range(len(FRAMES)))
def test_quality_on_shared_views_gives_the_same_measures_and_verdict(index):
    frame = FRAMES[index]
    config = QualityConfig()
    shared = check_quality(frame, config, views=FrameViews.of(frame), faces=Faces())
    alone = check_quality(frame, config, faces=Faces())
    reference = _reference_measures(frame)
    assert {k: shared.measures.to_dict()[k] for k in reference} == reference
    assert shared.measures == alone.measures
    assert (shared.ok, shared.issues, shared.reasons) == (alone.ok, alone.issues, alone.reasons)


@pytest.mark.parametrize("index", range(len(FRAMES)))
def test_the_scan_paths_crop_is_the_per_stage_crop(index):
    frame = FRAMES[index]
    views = FrameViews.of(frame)
    # What the scan did before: auto_box handed the tiny copy it made itself.
    per_stage = auto_box(frame, AUTO, preview=shrink(shrink(frame, MEASURE_SIDE), 192))
    assert auto_box(frame, AUTO, views=views) == per_stage
    assert choose_crop(frame, AUTO, views=views) == per_stage


@pytest.mark.parametrize("index", [2, 3, 4, 5, 6])  # preview-sized frames, as the hints get
def test_hints_on_shared_views_match_each_check_alone(index):
    frame = FRAMES[index]
    hints = HintEngine(QualityConfig(), AUTO).compute(frame)
    report = check_quality(frame, QualityConfig())
    crop = choose_crop(frame, AUTO)
    h, w = frame.shape[:2]
    x, y, bw, bh = crop.box
    assert hints.box == (x / w, y / h, bw / w, bh / h) and hints.crop_mode is crop.mode
    assert hints.measures == report.measures


def test_the_square_search_matches_a_full_grid_search():
    rng = np.random.default_rng(7)
    for _ in range(6):
        h, w = rng.integers(60, 200, size=2)
        score = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (9, 9), 0)
        body = rng.random((h, w)) > 0.05
        zones = np.zeros((h, w), bool)
        zones[h // 3:h // 3 + 5, w // 2:w // 2 + 8] = True
        overlay = rng.random((h, w)) > 0.995
        skin = rng.random((h, w)) > 0.1
        avoid = AvoidMasks(zones=zones, overlay=overlay, skin=skin)
        assert best_square(score, body, avoid) == _reference_best_square(score, body, avoid)


def test_the_square_search_without_rules_matches_a_full_grid_search():
    """No avoid masks, a body with holes reaching the edges: every ring clipped at an
    edge reads the padded integral's copies exactly as the clipped corners."""
    rng = np.random.default_rng(3)
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(40, 220, size=2))
        score = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (5, 5), 0) * 3
        body = cv2.blur(rng.random((h, w)).astype(np.float32), (9, 9)) > 0.42
        free = AvoidMasks(zones=np.zeros((h, w), bool), overlay=np.zeros((h, w), bool),
                          skin=np.ones((h, w), bool))
        assert best_square(score, body) == _reference_best_square(score, body, free)


@pytest.mark.parametrize("index", range(len(FRAMES)))
def test_a_crop_ground_made_ahead_gives_the_same_crop(index):
    """The scan makes the crop's face-free ground while the faces are looked for; the
    crop must be the one auto_box makes on its own, faces or none."""
    from device.vision.crop import crop_ground

    frame = FRAMES[index]
    views = FrameViews.of(frame)
    h, w = frame.shape[:2]
    faces = Faces([(w // 3, h // 3, w // 4, h // 4)], [(w // 3 + 4, h // 3 + 4, w // 16, h // 24)])
    for given in (None, faces):
        assert (auto_box(frame, AUTO, faces=given, views=FrameViews.of(frame),
                         ground=crop_ground(views))
                == auto_box(frame, AUTO, faces=given, views=FrameViews.of(frame)))
