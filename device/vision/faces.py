"""Faces in a photo: where the auto crop must not go, what a kept or exported full
frame blurs (outside the graded crop, which is kept exactly: it is the training
data), and whether the photo shows an animal.

Faces, their eyes, nose and lips come from MediaPipe's face detector and face mesh
(``device.vision.facemesh``, run on the device's own LiteRT interpreter). Eyes are also
found by darkness (``dark_eye_pairs``, used by ``device.vision.avoid``) for the faces the
detector misses. A cat face (OpenCV's bundled Haar cascade
``haarcascade_frontalcatface_extended``) says the photo shows an animal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

from device.vision.facemesh import landmarker

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h

CAT_CASCADE = "haarcascade_frontalcatface_extended.xml"
#: Faces are looked for on a copy whose shorter side is at most this: frames kept or
#: exported (privacy first), and the scan path (speed: its working copy).
DETECT_SIDE = 320
SCAN_DETECT_SIDE = 192
#: Smallest cat face looked for, as a fraction of the copy's shorter side.
MIN_FACE_FRACTION = 0.25
#: Feature zones inside a face box that has no mesh (a face given by hand), as
#: fractions of its width/height (x0, y0, x1, y1): eyes and brows, then nose and lips.
EYE_ZONE = (0.12, 0.18, 0.88, 0.52)
NOSE_LIPS_ZONE = (0.28, 0.45, 0.72, 0.95)
#: The hair above a face, kept clear like its features (x0, y0, x1, y1 as fractions of the
#: face box): from half a face above the box down through its top sixth, a tenth wider on
#: each side. The mesh's highest points lie at or above the hairline, and a fringe of
#: fine strands scores as a rough surface (set after looking at real-dev photos of
#: children's faces, where the crop chose the fringe).
HAIR_ZONE = (-0.1, -0.5, 1.1, 0.16)


#: Eyes by darkness: pixels this much darker (L*) than their 15x15 neighbourhood and
#: than the skin's median, in marks wider than tall whose width is this share of the
#: photo's shorter side.
DARK_EYE_LOCAL = 12.0
DARK_EYE_BELOW_SKIN = 20.0
DARK_EYE_WIDTH = (0.1, 0.3)


class FaceError(RuntimeError):
    """OpenCV's bundled cat cascade is missing (a broken OpenCV install)."""


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
    """Detections in the coordinates of the image they were found in: face boxes, eye
    boxes (with brows), the other parts the crop avoids (nose, lips) and cat faces."""

    faces: list[Box] = field(default_factory=list)
    eyes: list[Box] = field(default_factory=list)
    cats: list[Box] = field(default_factory=list)
    parts: list[Box] = field(default_factory=list)

    def zones(self) -> list[Box]:
        """Boxes the auto crop must not touch: eyes, nose and lips of every face (from
        the mesh; from the face's proportions for a face given without one), and the
        hair above every face (HAIR_ZONE)."""
        out = list(self.eyes) + list(self.parts)
        for x, y, w, h in self.faces:
            meshed = any(centre_inside(z, (x, y, w, h)) for z in self.parts)
            for x0, y0, x1, y1 in (HAIR_ZONE,) if meshed else (EYE_ZONE, NOSE_LIPS_ZONE,
                                                                HAIR_ZONE):
                out.append((x + int(x0 * w), y + int(y0 * h), max(1, int((x1 - x0) * w)),
                            max(1, int((y1 - y0) * h))))
        return out

    def scaled(self, factor: float) -> Faces:
        def sc(boxes: list[Box]) -> list[Box]:
            return [tuple(int(round(v * factor)) for v in b) for b in boxes]  # type: ignore[misc]
        return Faces(sc(self.faces), sc(self.eyes), sc(self.cats), sc(self.parts))

    def to_dict(self) -> dict[str, list[list[int]]]:
        return {"faces": [list(b) for b in self.faces], "eyes": [list(b) for b in self.eyes],
                "cats": [list(b) for b in self.cats], "parts": [list(b) for b in self.parts]}


def _shrunk(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    scale = min(1.0, side / min(h, w))
    small = rgb if scale >= 1 else cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return small, scale


def _detect(clf: cv2.CascadeClassifier, grey: np.ndarray, min_side: int,
            max_side: int | None = None, neighbours: int = 5) -> list[Box]:
    found = clf.detectMultiScale(grey, scaleFactor=1.2, minNeighbors=neighbours,
                                 minSize=(min_side, min_side),
                                 maxSize=(max_side or 0, max_side or 0))
    return [tuple(int(v) for v in b) for b in found]  # type: ignore[misc]


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


def find_faces(rgb: np.ndarray, *, side: int = DETECT_SIDE, cats: bool = True) -> Faces:
    """Faces (confirmed by the mesh), their eyes, nose and lips, and cat faces, in
    ``rgb``'s pixel coordinates; looked for on a copy whose shorter side is ``side``."""
    small, scale = _shrunk(rgb, side)
    faces, eyes, parts = [], [], []
    for mesh in landmarker().find(small):
        faces.append(mesh.box)
        boxes = mesh.part_boxes()
        eyes += [boxes["right_eye"], boxes["left_eye"]]
        parts += [boxes["nose"], boxes["lips"]]
    found_cats = _cats(_grey(small)) if cats else []
    result = Faces(faces, eyes, found_cats, parts)
    return result.scaled(1 / scale) if scale < 1 else result


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def _cats(grey: np.ndarray) -> list[Box]:
    short = min(grey.shape)
    return _detect(cascade(CAT_CASCADE), grey, max(20, int(short * MIN_FACE_FRACTION)),
                   neighbours=4)


def find_cats(rgb: np.ndarray, *, side: int = 120) -> list[Box]:
    """Cat faces only (the scan path looks for them when the photo is furry-textured:
    the detector is the dearest of the checks)."""
    small, scale = _shrunk(rgb, side)
    return [tuple(int(round(v / scale)) for v in b) for b in _cats(_grey(small))]  # type: ignore[misc]


def centre_inside(box: Box, outer: Box) -> bool:
    """Whether the centre of ``box`` lies in ``outer`` (both x, y, w, h)."""
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
