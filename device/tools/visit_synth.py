"""Synthetic follow-ups: one patient's lesion photographed over several visits.

For the follow-up benchmark (``python -m device bench-followup``), the demo and tests.
It lives in device, not trainer, because a device command needs it and the device
imports neither trainer nor convert (docs/ARCHITECTURE.md); like device.cameras.synthetic it
paints its own simple images with numpy and OpenCV.

Each lesion has a patch of skin of its own (tone, shading, pores, skin lines, moles,
a few hairs: what a camera finds again) and a second patch of eczema nearby, painted
once. Each visit looks at that patch
with a new pose (rotation up to +-20 degrees, scale 0.8-1.25, a shift, mild
perspective), new lighting (brightness, colour cast, a gradient) and sensor noise,
while the lesion's severity improves or worsens. Every visit carries the true box:
the square around the lesion where this visit's pose puts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from device.vision.crop import Box

log = logging.getLogger(__name__)

#: The skin patch is this much larger than a frame, so every pose sees skin to the edges.
PATCH_MARGIN = 1.6


@dataclass(frozen=True)
class VisitPhoto:
    frame: np.ndarray = field(repr=False)   # RGB uint8
    box: Box                                # the lesion's true square in this frame
    severity: float                         # 0 (clear) .. 1 (severe)
    angle: float                            # degrees
    scale: float


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1] with about ``cells`` blobs across the shorter side."""
    small = rng.uniform(-1, 1, (max(2, cells * h // min(h, w)), max(2, cells * w // min(h, w))))
    return cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


class LesionPatch:
    """One patient's skin with one lesion, painted once; ``photo`` takes a visit's photo."""

    def __init__(self, rng: np.random.Generator, width: int = 640, height: int = 480) -> None:
        self.width, self.height = width, height
        pw, ph = int(width * PATCH_MARGIN), int(height * PATCH_MARGIN)
        self.size = (pw, ph)
        tone = rng.uniform(0, 1)
        base = np.array([232, 190, 160]) * (1 - tone) + np.array([150, 100, 70]) * tone
        skin = np.empty((ph, pw, 3), np.float32)
        skin[:] = base
        skin *= (1 + 0.06 * _smooth(rng, ph, pw, 3))[..., None]
        pores = cv2.GaussianBlur(rng.normal(0, 1, (ph, pw)).astype(np.float32), (0, 0), 1.2)
        skin += (pores * 9)[..., None]
        lines = np.sin(np.add.outer(np.arange(ph) * 0.5, np.arange(pw) * 0.3)
                       / 2.5 + 3 * _smooth(rng, ph, pw, 6)).astype(np.float32)
        skin += (lines * 3)[..., None]
        for _ in range(int(rng.integers(8, 20))):  # moles and freckles
            cx, cy = int(rng.integers(0, pw)), int(rng.integers(0, ph))
            r = int(rng.integers(2, 7))
            cv2.circle(skin, (cx, cy), r, (base * rng.uniform(0.35, 0.7)).tolist(), -1,
                       cv2.LINE_AA)
        for _ in range(int(rng.integers(0, 15))):  # hairs
            x0, y0 = rng.integers(0, pw), rng.integers(0, ph)
            ang = rng.uniform(0, np.pi)
            ln = rng.uniform(20, 60)
            x1, y1 = x0 + ln * np.cos(ang), y0 + ln * np.sin(ang)
            cv2.line(skin, (int(x0), int(y0)), (int(x1), int(y1)), (base * 0.45).tolist(), 1,
                     cv2.LINE_AA)
        self.skin = skin
        # The lesion: an irregular blob near the patch centre, its texture fixed.
        side = min(width, height) * rng.uniform(0.28, 0.4)
        self.centre = (pw / 2 + rng.uniform(-0.1, 0.1) * width,
                       ph / 2 + rng.uniform(-0.1, 0.1) * height)
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
        r = np.hypot((xx - self.centre[0]) / (side / 2), (yy - self.centre[1]) / (side / 2.3))
        self.shape = np.clip(1.25 - r + 0.35 * _smooth(rng, ph, pw, 10), 0, 1)
        ys, xs = np.nonzero(self.shape > 0.2)
        self.extent = np.float32([[xs.min(), ys.min()], [xs.max(), ys.max()]])
        # Another patch of eczema nearby (atopic skin seldom has one): the auto crop may
        # pick it instead, which is what following a lesion is for.
        away = rng.uniform(0.42, 0.55) * width
        turn = rng.uniform(0, 2 * np.pi)
        ox, oy = self.centre[0] + away * np.cos(turn), self.centre[1] + away * np.sin(turn)
        oside = side * rng.uniform(0.7, 1.1)
        r = np.hypot((xx - ox) / (oside / 2.2), (yy - oy) / (oside / 2))
        other = np.clip(1.2 - r + 0.35 * _smooth(rng, ph, pw, 10), 0, 1)
        self.other = other * rng.uniform(0.7, 1.2)
        self.scratches = np.zeros((ph, pw), np.float32)
        cx, cy = self.centre
        for _ in range(int(rng.integers(4, 9))):
            x0, y0 = cx + rng.uniform(-side / 3, side / 3), cy + rng.uniform(-side / 3, side / 3)
            ang = rng.uniform(0, np.pi)
            x1, y1 = x0 + side / 3 * np.cos(ang), y0 + side / 3 * np.sin(ang)
            cv2.line(self.scratches, (int(x0), int(y0)), (int(x1), int(y1)), 1.0, 2, cv2.LINE_AA)
        self.texture = np.sin((xx * 0.7 + yy * 0.7) / max(2.0, side / 30)).astype(np.float32)

    def painted(self, severity: float) -> np.ndarray:
        """The patch with the lesion at ``severity`` (0-1): redness, skin lines, scratches."""
        mask = np.clip(self.shape * (0.6 + 0.6 * severity), 0, 1) * (self.shape > 0.05)
        mask = np.maximum(mask, np.clip(self.other, 0, 1) * (self.other > 0.05))[..., None]
        red = np.array([-5, -65, -55], np.float32) * (0.3 + 0.7 * severity)
        paint = red + (self.texture * 12 * severity)[..., None] \
            + (self.scratches * -60 * severity)[..., None] * np.array([0.3, 1, 1], np.float32)
        return self.skin + mask * paint

    def pose(self, rng: np.random.Generator, *, angle: float, scale: float) -> np.ndarray:
        """Homography patch -> frame: rotation and scale about the lesion, a shift that
        keeps it in view, and a mild perspective."""
        w, h = self.width, self.height
        cx, cy = self.centre
        shift = rng.uniform(-0.12, 0.12, 2) * (w, h)
        rot = cv2.getRotationMatrix2D((cx, cy), angle, scale)
        rot[:, 2] += (w / 2 - cx + shift[0], h / 2 - cy + shift[1])
        affine = np.vstack([rot, [0, 0, 1]])
        corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        jitter = (corners + rng.uniform(-0.035, 0.035, (4, 2)) * (w, h)).astype(np.float32)
        return cv2.getPerspectiveTransform(corners, jitter) @ affine

    def true_box(self, homography: np.ndarray) -> Box:
        """The square around the lesion where ``homography`` puts it (centre of its
        extent, side the larger of the mapped extent's width and height)."""
        (x0, y0), (x1, y1) = self.extent
        pts = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]).reshape(-1, 1, 2)
        out = cv2.perspectiveTransform(pts, homography).reshape(-1, 2)
        lo, hi = out.min(axis=0), out.max(axis=0)
        side = float(max(hi - lo))
        cx, cy = (lo + hi) / 2
        return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)),
                int(round(side)))

    def photo(self, rng: np.random.Generator, severity: float, *, angle: float = 0.0,
              scale: float = 1.0, relight: bool = True) -> VisitPhoto:
        hom = self.pose(rng, angle=angle, scale=scale)
        frame = cv2.warpPerspective(self.painted(severity), hom, (self.width, self.height),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if relight:
            gain = rng.uniform(0.8, 1.15) * rng.uniform(0.94, 1.06, 3)
            ramp = np.linspace(-1, 1, self.width, dtype=np.float32)[None, :]
            tilt = rng.uniform(-0.12, 0.12)
            frame = frame * gain.astype(np.float32) * (1 + tilt * ramp)[..., None]
        frame += rng.normal(0, 3.0, frame.shape[:2] + (1,)).astype(np.float32)
        return VisitPhoto(np.clip(frame, 0, 255).astype(np.uint8), self.true_box(hom),
                          float(severity), float(angle), float(scale))


def render_followup(seed: int, visits: int = 3, *, width: int = 640, height: int = 480
                    ) -> list[VisitPhoto]:
    """One lesion over ``visits`` visits: the first straight on, the rest with a random
    pose and lighting; the severity moves one way (improving or worsening)."""
    rng = np.random.default_rng(seed)
    patch = LesionPatch(rng, width, height)
    severity = rng.uniform(0.35, 0.9)
    step = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.25)
    photos = [patch.photo(rng, severity, relight=False)]
    for _ in range(visits - 1):
        severity = float(np.clip(severity + step, 0.05, 1.0))
        photos.append(patch.photo(rng, severity, angle=rng.uniform(-20, 20),
                                  scale=rng.uniform(0.8, 1.25)))
    return photos
