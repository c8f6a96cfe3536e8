"""Image quality check before grading: too dark, too bright, blurred, too small,
not skin. Each failure is a sentence staff understand, with what to do.

"Not skin" combines what the device can see, because colour ranges alone pass a
ginger cat, wood or peppers:
- skin colour: the share of skin-coloured pixels that are not vivid (red paint,
  plastic and fruit pass a skin-colour range; skin is never that saturated)
  (``skin_fraction``);
- skin texture: skin is smooth at this scale, fur and foliage are not. The
  median fine-detail energy of the skin-coloured pixels, relative to their
  brightness (``skin_texture``), must stay under ``quality.max_skin_texture``;
- faces: a cat's face (OpenCV's bundled cat-face detector) refuses the photo; a
  person's face is skin;
- the abstention score: when the models abstain and little of the photo is skin
  (under twice ``min_skin_fraction``, no face), the scan is refused as not skin
  (``confirm_skin``, called by the pipeline after grading).

Measures are taken on a grey copy whose shorter side is at most MEASURE_SIDE
pixels, so the blur threshold means the same for a 640x480 USB camera and a
12-megapixel Pi camera.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from enum import Enum
from fractions import Fraction

import cv2
import numpy as np

from device.config import QualityConfig
from device.vision.faces import Faces, find_cats
from device.vision.frameviews import MEASURE_SIDE as MEASURE_SIDE  # its home moved; still here
from device.vision.frameviews import WORK_SIDE, FrameViews, shrink, skin_mask

log = logging.getLogger(__name__)


class QualityIssue(str, Enum):
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    BLURRED = "blurred"
    TOO_SMALL = "too_small"
    NOT_SKIN = "not_skin"


@dataclass(frozen=True)
class QualityMeasures:
    """What the photo check measured on a frame (see ``measure``): mean brightness (0-255),
    sharpness (variance of the Laplacian on the preview copy), the shorter side in pixels,
    the share of plain skin-coloured pixels and the skin's texture; ``faces`` and
    ``cat_faces`` are None when faces were not looked for."""

    brightness: float
    sharpness: float
    size: float
    skin_fraction: float
    skin_texture: float
    faces: int | None = None
    cat_faces: int | None = None

    def to_dict(self, digits: int | None = None) -> dict[str, float]:
        """The measures as JSON numbers (rounded to ``digits``); the face counts only when
        they were looked for."""
        data = {"brightness": self.brightness, "sharpness": self.sharpness, "size": self.size,
                "skin_fraction": self.skin_fraction, "skin_texture": self.skin_texture}
        if self.faces is not None:
            data["faces"] = float(self.faces)
        if self.cat_faces is not None:
            data["cat_faces"] = float(self.cat_faces)
        return {k: float(v) if digits is None else round(float(v), digits) for k, v in data.items()}


@dataclass
class QualityReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    issues: list[QualityIssue] = field(default_factory=list)
    measures: QualityMeasures | None = None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "reasons": list(self.reasons),
                "issues": [i.value for i in self.issues],
                "measures": {} if self.measures is None else self.measures.to_dict(3)}


#: A photo this share of quality.max_skin_texture or rougher is searched for a cat's
#: face (the dearest detector, so not on every scan: real skin is smoother).
FURRY = 0.5
#: HSV saturation (0-255) above which a skin-coloured pixel is a vivid object instead.
VIVID_SATURATION = 178  # 0.7
#: Side of the copy the skin texture is measured on (fur strands are a few pixels here):
#: the shared tiny copy (device.vision.frameviews).
TEXTURE_SIDE = WORK_SIDE


def plain_skin_mask(rgb: np.ndarray, *, views: FrameViews | None = None) -> np.ndarray:
    """Skin-coloured pixels (device.vision.crop.skin_mask) that are not vivid: the YCrCb range
    also holds red paint, plastic and fruit, whose saturation skin does not reach.
    ``views``: the shared views whose tiny copy is ``rgb`` (its masks are reused)."""
    if views is None:
        saturation, skin = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1], skin_mask(rgb)
    else:
        saturation, skin = views.saturation, views.skin
    return skin & (saturation <= VIVID_SATURATION)


def skin_texture(small: np.ndarray, *, views: FrameViews | None = None) -> float:
    """Median fine-detail energy of the skin-coloured pixels over their mean brightness
    (x100); 0 when nothing is skin-coloured. ``views``: the shared views whose tiny
    copy is ``shrink(small, TEXTURE_SIDE)`` (its skin mask and grey are reused)."""
    if views is None:
        rgb = shrink(small, TEXTURE_SIDE)
        skin, grey8 = skin_mask(rgb), None
    else:
        skin, grey8 = views.skin, views.tiny_grey
    if skin.sum() < 16:
        return 0.0
    if grey8 is None:
        grey8 = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = grey8.astype(np.float32)
    detail = grey - cv2.GaussianBlur(grey, (0, 0), 1.5)
    energy = np.sqrt(np.maximum(cv2.blur(detail * detail, (5, 5)), 0))
    return float(100.0 * np.median(energy[skin]) / max(float(grey[skin].mean()), 1.0))


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the Laplacian of a uint8 grey image (the blur measure). The Laplacian
    of 8-bit pixels is a whole number within +-1020, so it is taken in 16 bits and its
    sums are exact integers; the variance is their exact quotient, rounded once."""
    lap = cv2.Laplacian(grey, cv2.CV_16S)
    n = lap.size
    # Both sums are whole numbers far below 2**53; OpenCV returns them as floats (the
    # square sum by way of a square root), so they are rounded back to the integers.
    total = round(cv2.sumElems(lap)[0])
    squares = round(cv2.norm(lap, cv2.NORM_L2SQR))
    return float(Fraction(squares * n - total * total, n * n))


def measure(rgb: np.ndarray, *, views: FrameViews | None = None) -> QualityMeasures:
    """The quality measures of ``rgb``, taken on its shared views (device.vision.frameviews;
    made here when the caller has none)."""
    h, w = rgb.shape[:2]
    views = FrameViews.of(rgb) if views is None else views
    grey = views.preview_grey
    return QualityMeasures(
        # The sum of 8-bit pixels is a whole number, exact in a double: the same mean as
        # numpy's, without its conversion of every pixel to float64.
        brightness=cv2.sumElems(grey)[0] / grey.size,
        sharpness=laplacian_variance(grey),
        size=float(min(h, w)),
        skin_fraction=float(plain_skin_mask(views.tiny, views=views).mean()),
        skin_texture=skin_texture(views.tiny, views=views),
    )


def check_quality(rgb: np.ndarray, config: QualityConfig, *, views: FrameViews | None = None,
                  faces: Faces | None = None,
                  measures: QualityMeasures | None = None) -> QualityReport:
    """Check one RGB uint8 frame against the configured thresholds (``views``: the
    frame's shared views, see measure; ``faces``: device.vision.faces.find_faces of the frame,
    when looked for; ``measures``: ``measure(rgb, views=views)`` when the caller took
    them already, e.g. while its faces were being looked for)."""
    views = FrameViews.of(rgb) if views is None else views
    m = measure(rgb, views=views) if measures is None else measures
    if faces is not None:
        cats = len(faces.cats)
        if not faces.cats and not faces.faces and m.skin_texture > FURRY * config.max_skin_texture:
            cats = len(find_cats(views.preview))
        m = replace(m, faces=len(faces.faces), cat_faces=cats)
    issues: list[tuple[QualityIssue, str]] = []
    if m.size < config.min_size:
        issues.append((QualityIssue.TOO_SMALL,
                       f"The image is too small ({int(m.size)} px on its shorter side, "
                       f"at least {config.min_size} needed). Please retake it closer or at "
                       "full resolution."))
    if m.brightness < config.min_brightness:
        issues.append((QualityIssue.TOO_DARK,
                       f"The photo is too dark (brightness {m.brightness:.0f}, at least "
                       f"{config.min_brightness:g}). Please retake it with more light."))
    elif m.brightness > config.max_brightness:
        issues.append((QualityIssue.TOO_BRIGHT,
                       f"The photo is too bright (brightness {m.brightness:.0f}, at most "
                       f"{config.max_brightness:g}). Please retake it without direct light "
                       "or flash glare."))
    if m.sharpness < config.min_sharpness:
        issues.append((QualityIssue.BLURRED,
                       f"The photo is blurred (sharpness {m.sharpness:.1f}, at least "
                       f"{config.min_sharpness:g}). Please hold the camera still, let it "
                       "focus and retake it."))
    issues += _not_skin(m, config)
    return QualityReport(ok=not issues, reasons=[r for _, r in issues],
                         issues=[i for i, _ in issues], measures=m)


def _not_skin(m: QualityMeasures, config: QualityConfig) -> list[tuple[QualityIssue, str]]:
    """The skin checks (see the module doc); at most one NOT_SKIN issue."""
    if m.cat_faces and not m.faces:
        return [(QualityIssue.NOT_SKIN, "This looks like an animal, not a person's skin. "
                 "Please photograph the patient's lesion.")]
    if m.skin_fraction < config.min_skin_fraction:
        return [(QualityIssue.NOT_SKIN,
                 f"Only {m.skin_fraction:.0%} of the photo looks like skin (at least "
                 f"{config.min_skin_fraction:.0%} needed). Please retake it with the "
                 "lesion's skin filling the frame.")]
    if m.skin_texture > config.max_skin_texture and not m.faces:
        return [(QualityIssue.NOT_SKIN,
                 f"The skin-coloured part of the photo is textured like fur, food or foliage, "
                 f"not skin (texture {m.skin_texture:.1f}, at most "
                 f"{config.max_skin_texture:g}). Please photograph the patient's lesion.")]
    return []


def confirm_skin(report: QualityReport, config: QualityConfig) -> QualityReport:
    """After the models abstained: a photo with little skin (under twice
    min_skin_fraction) and no face is refused as not skin rather than handed to staff
    to grade. Returns ``report`` itself when it stands."""
    m = report.measures
    if not report.ok or m is None or m.faces or m.skin_fraction >= 2 * config.min_skin_fraction:
        return report
    reason = (f"This does not look like skin: only {m.skin_fraction:.0%} of the photo is "
              "skin-coloured and the models do not recognise it. Please photograph the "
              "patient's lesion.")
    return QualityReport(ok=False, reasons=[*report.reasons, reason],
                         issues=[*report.issues, QualityIssue.NOT_SKIN], measures=m)
