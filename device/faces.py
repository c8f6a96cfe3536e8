"""Faces in a full frame, and blurring them outside the graded crop.

A data export with ``--full-frames`` hands whole camera frames to a workstation; a
frame of a cheek or a neck may show the patient's face. The frontal-face Haar
cascade bundled in OpenCV's wheel (``cv2.data.haarcascades``) finds them, nothing
is downloaded. The crop box is left exactly as graded: it is the training data.

(Issue 12 grows this module: eyes, lips and animals for the auto crop. The two
functions here keep their signatures.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h

FACE_CASCADE = "haarcascade_frontalface_default.xml"
#: Detection works on a grey copy whose shorter side is at most this (speed).
DETECT_SIDE = 320
#: Smallest face looked for, as a fraction of the copy's shorter side.
MIN_FACE_FRACTION = 0.1


class FaceError(RuntimeError):
    """OpenCV's bundled cascades are missing (a broken OpenCV install)."""


@cache
def cascade(name: str) -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + name
    clf = cv2.CascadeClassifier(path)
    if clf.empty():
        raise FaceError(f"{path}: OpenCV's bundled face detector could not be loaded; "
                        "reinstall opencv-python-headless")
    return clf


@dataclass(frozen=True)
class Faces:
    """Face boxes in the pixel coordinates of the image they were found in."""

    faces: list[Box] = field(default_factory=list)


def find_faces(rgb: np.ndarray, *, side: int = DETECT_SIDE) -> Faces:
    h, w = rgb.shape[:2]
    scale = min(1.0, side / min(h, w))
    small = rgb if scale >= 1 else cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    min_side = max(20, int(min(grey.shape) * MIN_FACE_FRACTION))
    found = cascade(FACE_CASCADE).detectMultiScale(grey, scaleFactor=1.2, minNeighbors=5,
                                                   minSize=(min_side, min_side))
    boxes = [tuple(int(round(v / scale)) for v in b) for b in found]
    return Faces(sorted(boxes))  # type: ignore[arg-type]


def blur_faces(rgb: np.ndarray, keep: Box | None = None, *, faces: Faces | None = None) -> np.ndarray:
    """A copy of ``rgb`` with every detected face (and a margin) pixelated and blurred
    beyond recognition, except inside ``keep`` (the crop box, kept exactly)."""
    faces = faces if faces is not None else find_faces(rgb)
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for x, y, fw, fh in faces.faces:
        pad = fw // 6
        x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(w, x + fw + pad), min(h, y + fh + pad)
        if x1 <= x0 or y1 <= y0:
            continue
        coarse = cv2.resize(out[y0:y1, x0:x1], (8, 8), interpolation=cv2.INTER_AREA)
        k = max(3, (max(x1 - x0, y1 - y0) // 6) | 1)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(
            cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR), (k, k), 0)
    if keep is not None and faces.faces:
        kx, ky, kw, kh = keep
        out[ky:ky + kh, kx:kx + kw] = rgb[ky:ky + kh, kx:kx + kw]
    return out
