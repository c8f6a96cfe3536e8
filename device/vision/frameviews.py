"""The frame looked at once: the scaled-down copies, the skin mask and the CIELAB
conversion that the quality check, the auto crop, the face search and the live hints
all read, made once per frame instead of once per stage.

``FrameViews.of(frame)`` keeps the frame's preview (shorter side at most
MEASURE_SIDE, INTER_AREA) and its tiny copy (shorter side at most WORK_SIDE, shrunk
from the preview). Everything derived from them is computed on first use and then
kept (``functools.cached_property``): a frame refused by the quality check never
pays for the crop's CIELAB conversion. The views are of one frame only; make new
ones for the next frame (or after a colour correction changes the preview).

Beside them, exact stand-ins for numpy calls that are slow on these small views
(``hypot``, ``channels``, ``scaled_median``): each gives the plain call's values, which
tests/test_fast_paths.py checks against the plain formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

# The one resizer lives in device.core.imageio; crop and quality import it from here.
from device.core.imageio import shrink as shrink

#: auto works on a copy whose shorter side is this many pixels (speed; lesions are large).
WORK_SIDE = 192


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask of skin-coloured pixels (a loose YCrCb range: light to dark skin,
    inflamed skin included)."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    # Y > 30, 133 <= Cr <= 185, 70 <= Cb <= 135, in one pass (the bounds are inclusive).
    return cv2.inRange(ycc, (31, 133, 70), (255, 185, 135)) > 0


def hypot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``np.hypot`` of two float32 arrays, the same values at a quarter of the cost: the
    squares of float32 values are exact in float64, and the float64 root of their sum
    rounded to float32 is how glibc's hypotf (which np.hypot calls) computes it."""
    return cv2.magnitude(x.astype(np.float64), y.astype(np.float64)).astype(np.float32)


def channels(lab: np.ndarray) -> list[np.ndarray]:
    """The channels of an (H, W, 3) image as three contiguous planes: numpy's sums and
    products on a channel taken in place (every third value) cost two to three times more."""
    return [np.ascontiguousarray(lab[..., c]) for c in range(3)]


def scaled_median(codes: np.ndarray, scale: float) -> float:
    """``float(np.median(codes.astype(np.float32) * scale))`` for uint8 ``codes``, exactly,
    from their histogram instead of a partition: the two middle codes are found by
    counting, and scaled and averaged in float32 as numpy would."""
    n = codes.size
    if n == 0:
        return float(np.median(codes.astype(np.float32) * scale))
    below = np.cumsum(np.bincount(codes.ravel(), minlength=256))
    middle = np.searchsorted(below, [(n - 1) // 2, n // 2], side="right")
    return float(np.mean(middle.astype(np.float32) * scale))


#: Shorter side of the preview the quality measures and the colour card search use.
MEASURE_SIDE = 512


@dataclass(frozen=True)
class FrameViews:
    """One frame's shared views. ``preview`` and ``tiny`` are RGB uint8; the rest is
    derived from them on first use and kept."""

    preview: np.ndarray
    tiny: np.ndarray

    @classmethod
    def of(cls, rgb: np.ndarray, *, preview: np.ndarray | None = None) -> FrameViews:
        """The views of ``rgb`` (RGB uint8); ``preview``: its preview when the caller
        already made it (e.g. colour-corrected)."""
        preview = shrink(rgb if preview is None else preview, MEASURE_SIDE)
        return cls(preview, shrink(preview, WORK_SIDE))

    @cached_property
    def preview_grey(self) -> np.ndarray:
        """The preview in grey (uint8): brightness and sharpness."""
        return cv2.cvtColor(self.preview, cv2.COLOR_RGB2GRAY)

    @cached_property
    def tiny_grey(self) -> np.ndarray:
        """The tiny copy in grey (uint8): skin texture."""
        return cv2.cvtColor(self.tiny, cv2.COLOR_RGB2GRAY)

    @cached_property
    def skin(self) -> np.ndarray:
        """device.vision.crop.skin_mask of the tiny copy (boolean)."""
        return skin_mask(self.tiny)

    @cached_property
    def saturation(self) -> np.ndarray:
        """HSV saturation (0-255) of the tiny copy."""
        return cv2.cvtColor(self.tiny, cv2.COLOR_RGB2HSV)[..., 1]

    @cached_property
    def lab(self) -> np.ndarray:
        """Float CIELAB (L* 0-100) of the tiny copy: the auto crop's working colours."""
        return cv2.cvtColor(self.tiny.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
