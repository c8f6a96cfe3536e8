"""Which region the auto crop chooses when a photo holds more than one candidate:
a whole inflamed patch over a small dark spot, a rough red lesion over a face's
smooth lips and dark eyes. Every image is drawn here."""

from __future__ import annotations

import cv2
import numpy as np

from device.config import CropConfig, CropMode
from device.crop import auto_box, iou

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
