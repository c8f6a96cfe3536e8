"""Live hints for aiming: what is wrong with the frame on screen, and where the crop goes.

Computed on the small preview frame several times a second (device.scan.preview calls
``HintEngine.compute``), so staff see "too dark" or "hold still" before they press
Capture rather than after. The checks are the scan's own: ``quality.check_quality``
with the configured thresholds, and ``crop.choose_crop`` with the configured crop mode,
so the square over the preview is the square the scan would grade. Motion (hold still)
is the mean grey-level change between two hint frames on a tiny copy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from device.colour.detect import find_card
from device.config import ColourConfig, CropConfig, CropMode, QualityConfig
from device.vision.crop import CropDoubt, CropError, choose_crop
from device.vision.frameviews import FrameViews
from device.vision.quality import QualityIssue, QualityMeasures, check_quality

log = logging.getLogger(__name__)

#: Mean absolute grey-level change (0-255) between hint frames above which the camera
#: (or the child) is moving. Sensor noise on the 80x60 copy stays well under 1.
MOTION_LIMIT = 4.0
MOTION_SIZE = (80, 60)


class Hint(str, Enum):
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    BLURRED = "blurred"
    NO_SKIN = "no_skin"
    HOLD_STILL = "hold_still"
    NO_COLOUR_CARD = "no_colour_card"

    @property
    def text(self) -> str:
        return _TEXT[self]


_TEXT = {
    Hint.TOO_DARK: "Too dark: add light",
    Hint.TOO_BRIGHT: "Too bright: avoid glare",
    Hint.BLURRED: "Blurred: hold steady, let it focus",
    Hint.NO_SKIN: "No skin: fill the frame with the lesion's skin",
    Hint.HOLD_STILL: "Hold still",
    Hint.NO_COLOUR_CARD: "Colour card not in view",
}

#: The quality issues that become hints (too small means nothing on a preview frame).
_FROM_QUALITY = {
    QualityIssue.TOO_DARK: Hint.TOO_DARK,
    QualityIssue.TOO_BRIGHT: Hint.TOO_BRIGHT,
    QualityIssue.BLURRED: Hint.BLURRED,
    QualityIssue.NOT_SKIN: Hint.NO_SKIN,
}


@dataclass(frozen=True)
class LiveHints:
    """One hint computation. ``box`` is the crop square as fractions of the frame
    (x, y, w, h in 0..1), so it overlays the preview at any size."""

    hints: tuple[Hint, ...]
    box: tuple[float, float, float, float] | None
    crop_mode: CropMode | None
    motion: float
    measures: QualityMeasures | None = None
    compute_ms: float = 0.0
    crop_doubt: CropDoubt | None = None  # why the auto crop was unsure (guide square shown)

    @property
    def ok(self) -> bool:
        return not self.hints

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "hints": [{"code": h.value, "text": h.text} for h in self.hints],
            "box": [round(v, 4) for v in self.box] if self.box else None,
            "crop_mode": self.crop_mode.value if self.crop_mode else None,
            "crop_doubt": self.crop_doubt.value if self.crop_doubt else None,
            "motion": round(self.motion, 2),
            "measures": self.measures.to_dict(2) if self.measures else {},
            "compute_ms": round(self.compute_ms, 1),
        }


class HintEngine:
    """Computes LiveHints for successive preview frames (keeps the last one for motion).
    Not thread-safe: one capture thread calls it."""

    def __init__(self, quality: QualityConfig, crop: CropConfig,
                 motion_limit: float = MOTION_LIMIT, colour: ColourConfig | None = None) -> None:
        self.quality = quality
        self.crop = crop
        self.colour = colour  # a profile with colour.require_card: hint until a card shows
        self.motion_limit = motion_limit
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the last frame (the stream paused: motion starts afresh)."""
        self._previous = None

    def _motion(self, rgb: np.ndarray, views: FrameViews) -> float:
        # The preview frame is usually its own preview (device.vision.frameviews): one grey copy.
        grey = views.preview_grey if views.preview is rgb else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        tiny = cv2.resize(grey, MOTION_SIZE,
                          interpolation=cv2.INTER_AREA).astype(np.int16)
        previous, self._previous = self._previous, tiny
        if previous is None or previous.shape != tiny.shape:
            return 0.0
        return float(np.abs(tiny - previous).mean())

    def compute(self, rgb: np.ndarray) -> LiveHints:
        """Hints for one RGB uint8 preview frame."""
        start = time.perf_counter()
        views = FrameViews.of(rgb)  # one preview, tiny copy and skin mask for every check
        report = check_quality(rgb, self.quality, views=views)
        hints = [_FROM_QUALITY[i] for i in report.issues if i in _FROM_QUALITY]
        motion = self._motion(rgb, views)
        if motion > self.motion_limit:
            hints.append(Hint.HOLD_STILL)
        if (self.colour is not None and self.colour.require_card
                and find_card(rgb, kinds=tuple(self.colour.cards)) is None):
            hints.append(Hint.NO_COLOUR_CARD)
        box: tuple[float, float, float, float] | None = None
        mode: CropMode | None = None
        doubt: CropDoubt | None = None
        try:
            # The box mode needs a box from staff: the preview shows the guide square then.
            config_mode = CropMode.GUIDE if self.crop.mode is CropMode.BOX else None
            crop = choose_crop(rgb, self.crop, mode=config_mode, views=views)
            h, w = rgb.shape[:2]
            x, y, bw, bh = crop.box
            box, mode, doubt = (x / w, y / h, bw / w, bh / h), crop.mode, crop.doubt
        except CropError as exc:  # a frame too odd to crop: no square, the hints say why
            log.debug("no crop square for the preview: %s", exc)
        return LiveHints(tuple(hints), box, mode, motion, report.measures,
                         (time.perf_counter() - start) * 1000.0, doubt)
