"""Faces in a photo: where the auto crop must not go, what a kept or exported full
frame blurs (outside the graded crop, which is kept exactly: it is the training
data), and whether the photo shows an animal.

Uses the Haar cascades bundled in OpenCV 4's wheel (``cv2.data.haarcascades``;
OpenCV 5 wheels dropped them): nothing is downloaded. A frontal face, or a pair
of eyes (a close-up's face runs past the photo's edges), gives the feature zones
(eyes, nose, lips) from the face's proportions. Eyes are also found by darkness
(``dark_eye_pairs``) for the faces the cascades miss: closed eyes (a lash line) and
infants' close-ups. A cat face
(``haarcascade_frontalcatface_extended``) says the photo shows an animal.
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
EYE_CASCADE = "haarcascade_eye.xml"
CAT_CASCADE = "haarcascade_frontalcatface_extended.xml"
#: Detection works on a grey copy whose shorter side is at most this: frames kept or
#: exported (privacy first), and the scan path (speed: it shares the 10 ms budget).
DETECT_SIDE = 320
SCAN_DETECT_SIDE = 120
SCAN_FACE_SIDE = 80
#: Smallest face looked for, as a fraction of the copy's shorter side.
MIN_FACE_FRACTION = 0.25
#: Feature zones inside a face box (fractions of its width/height: x0, y0, x1, y1):
#: both eyes and brows, then nose and lips. Cheeks, forehead and chin stay free.
EYE_ZONE = (0.12, 0.18, 0.88, 0.52)
NOSE_LIPS_ZONE = (0.28, 0.45, 0.72, 0.95)


#: Eyes by darkness: pixels this much darker (L*) than their 15x15 neighbourhood and
#: than the skin's median, in marks wider than tall whose width is this share of the
#: photo's shorter side.
DARK_EYE_LOCAL = 12.0
DARK_EYE_BELOW_SKIN = 20.0
DARK_EYE_WIDTH = (0.1, 0.3)


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
    """Detections in the coordinates of the image they were found in."""

    faces: list[Box] = field(default_factory=list)
    eyes: list[Box] = field(default_factory=list)
    cats: list[Box] = field(default_factory=list)

    def zones(self) -> list[Box]:
        """Boxes the auto crop must not touch: eyes, nose and lips of every face."""
        out = list(self.eyes)
        for x, y, w, h in self.faces:
            for x0, y0, x1, y1 in (EYE_ZONE, NOSE_LIPS_ZONE):
                out.append((x + int(x0 * w), y + int(y0 * h), max(1, int((x1 - x0) * w)),
                            max(1, int((y1 - y0) * h))))
        return out

    def scaled(self, factor: float) -> Faces:
        def sc(boxes: list[Box]) -> list[Box]:
            return [tuple(int(round(v * factor)) for v in b) for b in boxes]  # type: ignore[misc]
        return Faces(sc(self.faces), sc(self.eyes), sc(self.cats))

    def to_dict(self) -> dict[str, list[list[int]]]:
        return {"faces": [list(b) for b in self.faces], "eyes": [list(b) for b in self.eyes],
                "cats": [list(b) for b in self.cats]}


def _grey(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    scale = min(1.0, side / min(h, w))
    small = rgb if scale >= 1 else cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    return grey, scale


def _detect(clf: cv2.CascadeClassifier, grey: np.ndarray, min_side: int,
            max_side: int | None = None, neighbours: int = 5) -> list[Box]:
    found = clf.detectMultiScale(grey, scaleFactor=1.2, minNeighbors=neighbours,
                                 minSize=(min_side, min_side),
                                 maxSize=(max_side or 0, max_side or 0))
    return [tuple(int(v) for v in b) for b in found]  # type: ignore[misc]


def eye_pairs(eyes: list[Box]) -> list[tuple[Box, Box]]:
    """Two eyes of one face: similar size, side by side at about the same height,
    1.2-4 eye widths apart. A lone "eye" on eczematous skin is usually a papule."""
    pairs = []
    for i, a in enumerate(eyes):
        for b in eyes[i + 1:]:
            left, right = (a, b) if a[0] <= b[0] else (b, a)
            size = (left[2] + right[2]) / 2
            gap = (right[0] + right[2] / 2) - (left[0] + left[2] / 2)
            if (0.6 < left[2] / right[2] < 1.6 and abs(left[1] - right[1]) < 0.6 * size
                    and 1.2 * size < gap < 4 * size):
                pairs.append((left, right))
    return pairs


def regions(mask: np.ndarray) -> list[tuple[Box, np.ndarray]]:
    """The separate regions of a boolean mask (8-connected, holes filled), each as its
    box and its outline. Outlines, not connectedComponentsWithStats: its statistics cost
    ten times the labelling on the scan path."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [(tuple(int(v) for v in cv2.boundingRect(c)), c) for c in contours]  # type: ignore[misc]


def dark_eye_pairs(light: np.ndarray, skin: np.ndarray) -> list[tuple[Box, Box]]:
    """Pairs of eyes found by darkness on a small copy (``light``: its CIELAB L*;
    ``skin``: its skin mask): a closed eye's lash line or an open eye's lid and iris is
    a dark mark wider than tall, and two eyes are such marks of about one width, at one
    height, 1.4-3.2 widths apart. Stricter than eye_pairs: dark marks are many on
    eczema (crusts, scratches, hair), and a mark cut by the photo's edge is left out."""
    if skin.sum() < 100:
        return []
    local = cv2.blur(light, (15, 15))
    dark = (light < local - DARK_EYE_LOCAL) & (light < float(np.median(light[skin])) - DARK_EYE_BELOW_SKIN)
    h, w = light.shape
    lo, hi = (f * min(h, w) for f in DARK_EYE_WIDTH)
    marks = [(x, y, bw, bh) for (x, y, bw, bh), _ in regions(dark)
             if lo <= bw <= hi and bw >= 1.8 * bh and x > 0 and y > 0 and x + bw < w]
    pairs = []
    for i, a in enumerate(marks):
        for b in marks[i + 1:]:
            left, right = (a, b) if a[0] <= b[0] else (b, a)
            size = (left[2] + right[2]) / 2
            gap = (right[0] + right[2] / 2) - (left[0] + left[2] / 2)
            dy = abs((left[1] + left[3] / 2) - (right[1] + right[3] / 2))
            if 0.67 < left[2] / right[2] < 1.5 and dy < 0.25 * size and 1.4 * size < gap < 3.2 * size:
                pairs.append((left, right))
    return pairs


def face_from_eyes(left: Box, right: Box) -> Box:
    """The face box that two eyes imply (the face may run past the photo's edges)."""
    cx = (left[0] + left[2] / 2 + right[0] + right[2] / 2) / 2
    gap = (right[0] + right[2] / 2) - (left[0] + left[2] / 2)
    eye_y = (left[1] + left[3] / 2 + right[1] + right[3] / 2) / 2
    w = 2.2 * gap
    return (int(cx - w / 2), int(eye_y - 0.38 * w), int(w), int(w))


def find_faces(rgb: np.ndarray, *, side: int = DETECT_SIDE, cats: bool = True,
               face_side: int | None = None) -> Faces:
    """Faces, eyes and cat faces in ``rgb``'s pixel coordinates. Eyes are looked for over
    the whole photo (a close-up's face runs past its edges, so no face box is found) and
    kept when inside a face or paired; a pair implies its face. ``face_side``: look for
    faces on a still smaller copy (the scan path: big faces only, a quarter the cost)."""
    grey, scale = _grey(rgb, side)
    short = min(grey.shape)
    faces = _faces(grey, face_side)
    found = _detect(cascade(EYE_CASCADE), grey, max(8, short // 20), short // 3, neighbours=6)
    eyes: list[Box] = []
    for left, right in eye_pairs(found):
        eyes += [left, right]
        implied = face_from_eyes(left, right)
        if not any(_inside(left, f) for f in faces):
            faces.append(implied)
    eyes += [e for e in found if e not in eyes and any(_inside(e, f) for f in faces)]
    found_cats = _cats(grey) if cats else []
    result = Faces(faces, eyes, found_cats)
    return result.scaled(1 / scale) if scale < 1 else result


def _faces(grey: np.ndarray, face_side: int | None) -> list[Box]:
    short = min(grey.shape)
    if face_side is None or face_side >= short:
        return _detect(cascade(FACE_CASCADE), grey, max(20, int(short * MIN_FACE_FRACTION)))
    f = face_side / short
    small = cv2.resize(grey, (max(1, round(grey.shape[1] * f)), face_side),
                       interpolation=cv2.INTER_AREA)
    found = _detect(cascade(FACE_CASCADE), small, max(20, int(face_side * MIN_FACE_FRACTION)))
    return [tuple(int(round(v / f)) for v in b) for b in found]  # type: ignore[misc]


def _cats(grey: np.ndarray) -> list[Box]:
    short = min(grey.shape)
    return _detect(cascade(CAT_CASCADE), grey, max(20, int(short * MIN_FACE_FRACTION)),
                   neighbours=4)


def find_cats(rgb: np.ndarray, *, side: int = SCAN_DETECT_SIDE) -> list[Box]:
    """Cat faces only (the scan path looks for them when the photo is furry-textured:
    the detector is the dearest of the three)."""
    grey, scale = _grey(rgb, side)
    return [tuple(int(round(v / scale)) for v in b) for b in _cats(grey)]  # type: ignore[misc]


def _inside(box: Box, outer: Box) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]


def blur_faces(rgb: np.ndarray, keep: Box | None = None, *, faces: Faces | None = None) -> np.ndarray:
    """A copy of ``rgb`` with every detected face blurred beyond recognition, except
    inside ``keep`` (the crop box, kept exactly as graded)."""
    faces = faces if faces is not None else find_faces(rgb, cats=False)
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for x, y, fw, fh in faces.faces:
        pad = fw // 6
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(w, x + fw + pad), min(h, y + fh + pad)
        if x1 <= x0 or y1 <= y0:
            continue
        region = out[y0:y1, x0:x1]
        k = max(3, (max(x1 - x0, y1 - y0) // 6) | 1)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(cv2.resize(
            cv2.resize(region, (8, 8), interpolation=cv2.INTER_AREA), (x1 - x0, y1 - y0),
            interpolation=cv2.INTER_LINEAR), (k, k), 0)
    if keep is not None and faces.faces:
        kx, ky, kw, kh = keep
        out[ky:ky + kh, kx:kx + kw] = rgb[ky:ky + kh, kx:kx + kw]
    return out
