"""Finding a followed lesion again: register the new frame to the lesion's last frame.

Local features (ORB) in both frames, matched with Lowe's ratio test, then a homography
fitted with RANSAC (OpenCV). The fit is believed only when it passes the inlier check:
enough inliers, a large enough share of the matches, and a plausible pose (no mirror,
scale within 0.5-2x, mild perspective, the lesion's centre inside the new frame). Then
the last crop square is mapped into the new frame and proposed. Anything else is a
refusal with its reason (``Registration.message``): the caller falls back to the auto
crop and says so; it never guesses silently.

Features are found on a grey, contrast-equalised copy whose shorter side is
``RegistrationConfig.work_side`` pixels, so the cost does not grow with the camera's
resolution and a lighting change moves fewer features.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from device.vision.crop import Box, CropError, clip_box

log = logging.getLogger(__name__)


class RegistrationStatus(str, Enum):
    OK = "ok"
    FEW_FEATURES = "few_features"      # one of the frames has too little texture
    FEW_MATCHES = "few_matches"        # the frames share too few features
    FEW_INLIERS = "few_inliers"        # no pose agrees with enough of the matches
    IMPLAUSIBLE = "implausible_pose"   # a pose was found but no camera moves like that
    OUTSIDE = "outside_frame"          # the lesion would lie outside the new frame


@dataclass(frozen=True)
class RegistrationConfig:
    """The inlier check. Chosen on synthetic follow-ups (python -m device bench-followup),
    where a wrong match is refused; see the module doc."""

    work_side: int = 480
    features: int = 1500
    ratio: float = 0.8              # Lowe's ratio test on the two nearest matches
    ransac_px: float = 4.0          # reprojection error of an inlier, work pixels
    min_matches: int = 12
    min_inliers: int = 25
    min_inlier_share: float = 0.15  # of the ratio-test matches
    scale_range: tuple[float, float] = (0.5, 2.0)
    max_anisotropy: float = 1.6     # ratio of the two singular values of the linear part
    max_perspective: float = 1.0    # change of scale across the frame from the projective row


@dataclass(frozen=True)
class Registration:
    status: RegistrationStatus
    box: Box | None = None           # the last crop, mapped into the new frame (x, y, w, h)
    matches: int = 0
    inliers: int = 0
    homography: np.ndarray | None = None  # last frame -> new frame, full-resolution pixels
    ms: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is RegistrationStatus.OK

    def message(self) -> str:
        if self.ok:
            return (f"found the lesion of the last visit ({self.inliers} of {self.matches} "
                    "matched features agree)")
        return f"could not find the lesion of the last visit in this photo: {self.detail}"

    def to_dict(self) -> dict:
        return {"status": self.status.value, "ok": self.ok,
                "box": list(self.box) if self.box else None, "matches": self.matches,
                "inliers": self.inliers, "ms": round(self.ms, 2), "message": self.message()}


def _grey(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Equalised grey copy with shorter side ``side`` and its scale (work px per px)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, side / min(h, w))
    small = rgb if scale >= 1 else cv2.resize(
        rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey), scale


def _pose_problem(h: np.ndarray, size: tuple[int, int], config: RegistrationConfig) -> str:
    """Why homography ``h`` (work pixels) is no camera move; empty when plausible."""
    h = h / h[2, 2]
    linear = h[:2, :2]
    if np.linalg.det(linear) <= 0:
        return "the match is mirrored"
    s = np.linalg.svd(linear, compute_uv=False)
    scale = float(np.sqrt(s[0] * s[1]))
    lo, hi = config.scale_range
    if not lo <= scale <= hi:
        return f"the lesion would be {scale:.2f}x its last size (allowed {lo:g}-{hi:g}x)"
    if s[0] / s[1] > config.max_anisotropy:
        return f"the match is stretched {s[0] / s[1]:.2f}x in one direction"
    w, ht = size
    spread = abs(float(h[2, 0])) * w + abs(float(h[2, 1])) * ht
    if spread > config.max_perspective:
        return f"the match tilts the skin too far ({spread:.2f})"
    return ""


def map_box(box: Box, homography: np.ndarray) -> tuple[float, float, float]:
    """Centre (x, y) and side of ``box`` mapped by ``homography``: the mapped centre, and
    the side of a square with the mapped quadrilateral's area. (Not the square around
    the quadrilateral: that grows with each rotation, visit after visit.)"""
    x, y, w, h = box
    pts = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x + w / 2, y + h / 2]])
    out = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), homography).reshape(-1, 2)
    quad = out[:4]
    area = 0.5 * abs(float(np.dot(quad[:, 0], np.roll(quad[:, 1], 1))
                           - np.dot(quad[:, 1], np.roll(quad[:, 0], 1))))
    return float(out[4, 0]), float(out[4, 1]), float(np.sqrt(area))


def register(last_frame: np.ndarray, last_box: Box, new_frame: np.ndarray,
             config: RegistrationConfig | None = None) -> Registration:
    """Map ``last_box`` (x, y, w, h in ``last_frame`` pixels) into ``new_frame``."""
    config = config or RegistrationConfig()
    start = time.perf_counter()

    def done(status: RegistrationStatus, detail: str, **kw: object) -> Registration:
        reg = Registration(status, ms=(time.perf_counter() - start) * 1000.0, detail=detail,
                           **kw)  # type: ignore[arg-type]
        log.debug("registration: %s (%s)", status.value, detail or reg.message())
        return reg

    a, sa = _grey(last_frame, config.work_side)
    b, sb = _grey(new_frame, config.work_side)
    orb = cv2.ORB_create(nfeatures=config.features, fastThreshold=10)
    ka, da = orb.detectAndCompute(a, None)
    kb, db = orb.detectAndCompute(b, None)
    if da is None or db is None or len(ka) < config.min_matches or len(kb) < config.min_matches:
        return done(RegistrationStatus.FEW_FEATURES,
                    "too little texture to match (blurred or blank photo?)")
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < config.ratio * p[1].distance]
    if len(good) < config.min_matches:
        return done(RegistrationStatus.FEW_MATCHES,
                    f"only {len(good)} features match (need {config.min_matches})",
                    matches=len(good))
    src = np.float32([ka[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([kb[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    hom, mask = cv2.findHomography(src, dst, cv2.RANSAC, config.ransac_px)
    inliers = int(mask.sum()) if mask is not None else 0
    if hom is None or inliers < config.min_inliers or inliers < config.min_inlier_share * len(good):
        return done(RegistrationStatus.FEW_INLIERS,
                    f"only {inliers} of {len(good)} matched features agree on one position "
                    f"(need {config.min_inliers} and {config.min_inlier_share:.0%})",
                    matches=len(good), inliers=inliers)
    problem = _pose_problem(hom, (b.shape[1], b.shape[0]), config)
    if problem:
        return done(RegistrationStatus.IMPLAUSIBLE, problem, matches=len(good), inliers=inliers)
    # work pixels -> full pixels: H_full = S_b^-1 . H . S_a
    full = np.diag([1 / sb, 1 / sb, 1.0]) @ hom @ np.diag([sa, sa, 1.0])
    cx, cy, side = map_box(last_box, full)
    h, w = new_frame.shape[:2]
    if not (0 <= cx < w and 0 <= cy < h):
        return done(RegistrationStatus.OUTSIDE, "the lesion would lie outside this photo",
                    matches=len(good), inliers=inliers)
    side = min(side, h, w)
    try:
        box = clip_box((cx - side / 2, cy - side / 2, side, side), h, w)
    except CropError as exc:
        return done(RegistrationStatus.OUTSIDE, str(exc), matches=len(good), inliers=inliers)
    return done(RegistrationStatus.OK, "", box=box, matches=len(good), inliers=inliers,
                homography=full)
