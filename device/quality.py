"""Image quality check before grading: too dark, too bright, blurred, too small,
mostly not skin. Each failure is a sentence staff understand, with what to do.

Measures are taken on a grey copy whose shorter side is at most MEASURE_SIDE
pixels, so the blur threshold means the same for a 640x480 USB camera and a
12-megapixel Pi camera.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum

import cv2
import numpy as np

from device.config import QualityConfig
from device.crop import shrink, skin_mask

log = logging.getLogger(__name__)

MEASURE_SIDE = 512


class QualityIssue(str, Enum):
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    BLURRED = "blurred"
    TOO_SMALL = "too_small"
    NOT_SKIN = "not_skin"


@dataclass
class QualityReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    issues: list[QualityIssue] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "reasons": list(self.reasons),
                "issues": [i.value for i in self.issues],
                "measures": {k: round(float(v), 3) for k, v in self.measures.items()}}


def measure(rgb: np.ndarray, *, preview: np.ndarray | None = None) -> dict[str, float]:
    """``preview``: ``shrink(rgb, MEASURE_SIDE)`` when the caller already made it."""
    h, w = rgb.shape[:2]
    small = shrink(rgb if preview is None else preview, MEASURE_SIDE)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return {
        "brightness": float(grey.mean()),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        "size": float(min(h, w)),
        "skin_fraction": float(skin_mask(small).mean()),
    }


def check_quality(rgb: np.ndarray, config: QualityConfig, *,
                  preview: np.ndarray | None = None) -> QualityReport:
    """Check one RGB uint8 frame against the configured thresholds (``preview``: see
    measure)."""
    m = measure(rgb, preview=preview)
    issues: list[tuple[QualityIssue, str]] = []
    if m["size"] < config.min_size:
        issues.append((QualityIssue.TOO_SMALL,
                       f"The image is too small ({int(m['size'])} px on its shorter side, "
                       f"at least {config.min_size} needed). Please retake it closer or at "
                       "full resolution."))
    if m["brightness"] < config.min_brightness:
        issues.append((QualityIssue.TOO_DARK,
                       f"The photo is too dark (brightness {m['brightness']:.0f}, at least "
                       f"{config.min_brightness:g}). Please retake it with more light."))
    elif m["brightness"] > config.max_brightness:
        issues.append((QualityIssue.TOO_BRIGHT,
                       f"The photo is too bright (brightness {m['brightness']:.0f}, at most "
                       f"{config.max_brightness:g}). Please retake it without direct light "
                       "or flash glare."))
    if m["sharpness"] < config.min_sharpness:
        issues.append((QualityIssue.BLURRED,
                       f"The photo is blurred (sharpness {m['sharpness']:.1f}, at least "
                       f"{config.min_sharpness:g}). Please hold the camera still, let it "
                       "focus and retake it."))
    if m["skin_fraction"] < config.min_skin_fraction:
        issues.append((QualityIssue.NOT_SKIN,
                       f"Only {m['skin_fraction']:.0%} of the photo looks like skin (at least "
                       f"{config.min_skin_fraction:.0%} needed). Please retake it with the "
                       "lesion's skin filling the frame."))
    return QualityReport(ok=not issues, reasons=[r for _, r in issues],
                         issues=[i for i, _ in issues], measures=m)
