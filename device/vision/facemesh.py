"""Faces by landmarks: MediaPipe's short-range face detector and its 468-point face
mesh, run on the device's own LiteRT interpreter (no new runtime dependency).

The two models ship in ``device/vision/facemodels/`` (Apache-2.0, see its NOTICE), taken
byte for byte from the ``mediapipe==0.10.18`` wheel and pinned here by sha256
(``firmware_config/fetch-face-models.py`` takes them again from that wheel).

What the models expect, and what is done here in NumPy around them:

- The detector sees the photo letterboxed onto a black square and shrunk to
  128 x 128, values scaled to -1..1. Its 896 anchors sit on a 16 x 16 grid (2 per
  cell) and an 8 x 8 grid (6 per cell), every anchor 1 x 1, at the cells' centres.
  Each anchor regresses a box (centre offset, width, height) and six key points
  (eyes, nose tip, mouth, ears), all in the input's pixels, and one score
  (a logit). Overlapping detections are blended by their scores (weighted NMS).
- A close-up shows half a face, which the detector (trained on whole faces) misses,
  so the photo is also looked at padded to 1.5x and 2x its size.
- The mesh sees a 192 x 192 crop, values 0..1, of a square 1.5 times the detected
  box, turned so that the eyes are level. It returns 468 points (x, y, depth, in
  the crop's pixels) and a face-presence logit; a crop that does not hold a face
  scores low, which throws out the detector's misfires.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.grading.interpreter import interpreter_class

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h

MODEL_DIR = Path(__file__).resolve().parent / "facemodels"
#: File name -> sha256 of the exact bytes in mediapipe 0.10.18's wheels.
MODELS = {
    "face_detection_short_range.tflite":
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    "face_landmark.tflite":
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
}
DETECTOR, MESH = MODELS

DETECT_INPUT = 128
MESH_INPUT = 192
#: Detector score (after the sigmoid) a face must reach, and the overlap past which
#: two detections are one face.
MIN_DETECTION = 0.5
NMS_IOU = 0.3
#: Face-presence score (after the sigmoid) the mesh must give its crop.
MIN_PRESENCE = 0.5
#: The mesh's crop: this many times the detected box, as a square.
MESH_SCALE = 1.5
#: The photo is also searched padded to these multiples of its size (close-ups).
PADDINGS = (1.0, 1.5, 2.0)

# Mesh point indices (MediaPipe's canonical face mesh) of the parts the crop avoids.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
             46, 53, 52, 65, 55, 70, 63, 105, 66, 107)  # eye outline and brow
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
            276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
NOSE = (1, 2, 4, 5, 19, 94, 97, 98, 326, 327, 64, 294, 129, 358, 48, 278)  # tip, nostrils, wings
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269,
        270, 409)
#: Each part's box grows by this share of its size on every side.
PART_MARGIN = 0.25


class FaceModelError(RuntimeError):
    """The face models are missing or damaged (a broken install)."""


@dataclass(frozen=True)
class FaceMesh:
    """One face: its box, detector score and mesh points, in the photo's pixels."""

    box: Box
    score: float
    points: np.ndarray  # (468, 2) float32, x and y

    def part_boxes(self) -> dict[str, Box]:
        """Boxes around both eyes (with brows), the nose and the lips, grown a little."""
        return {name: _grown(self.points[list(idx)], PART_MARGIN)
                for name, idx in (("right_eye", RIGHT_EYE), ("left_eye", LEFT_EYE),
                                  ("nose", NOSE), ("lips", LIPS))}


def _grown(points: np.ndarray, margin: float) -> Box:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return (int(np.floor(x0 - mx)), int(np.floor(y0 - my)),
            max(1, int(np.ceil(x1 - x0 + 2 * mx))), max(1, int(np.ceil(y1 - y0 + 2 * my))))


@cache
def anchors() -> np.ndarray:
    """The detector's 896 anchor centres (x, y) as fractions of its input."""
    out = []
    for grid, per_cell in ((DETECT_INPUT // 8, 2), (DETECT_INPUT // 16, 6)):
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        centres = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 2)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100.0, 100.0)))


def decode(raw: np.ndarray, logits: np.ndarray, *, min_score: float = MIN_DETECTION
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector's outputs as boxes (x0, y0, x1, y1), key points (6, 2) and scores,
    all as fractions of its input, for the anchors scoring at least ``min_score``."""
    scores = _sigmoid(logits.reshape(-1))
    keep = scores >= min_score
    raw = raw.reshape(-1, 16)[keep] / DETECT_INPUT
    centre = anchors()[keep]
    cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    points = raw[:, 4:].reshape(-1, 6, 2) + centre[:, None, :]
    return boxes, points, scores[keep]


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray,
                 iou: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """One detection per face: the best-scoring box of each overlapping group, its box
    and key points replaced by the group's score-weighted mean."""
    order = np.argsort(-scores)
    boxes, points, scores = boxes[order], points[order], scores[order]
    left = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not left[i]:
            continue
        group = left & (_iou(boxes[i], boxes) > iou)
        group[i] = True
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(),
                    (points[group] * w[:, :, None]).sum(0) / w.sum(), float(scores[i])))
        left &= ~group
    return out


def _verified(path: Path, sha256: str) -> Path:
    if not path.is_file():
        raise FaceModelError(f"{path}: face model missing; reinstall atopiscan "
                             "(or run firmware_config/fetch-face-models.py)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise FaceModelError(f"{path}: face model damaged (sha256 {digest[:12]}..., "
                             f"expected {sha256[:12]}...); reinstall atopiscan")
    return path


class FaceLandmarker:
    """Both face models, loaded once; ``find`` is thread-safe (one lock: the scan loop
    and the dashboard's exports may look for faces at the same time)."""

    def __init__(self, model_dir: Path = MODEL_DIR, *, threads: int = 1,
                 backend: type | None = None) -> None:
        cls = backend or interpreter_class()[0]
        self._detector: Any = cls(model_path=str(_verified(model_dir / DETECTOR, MODELS[DETECTOR])),
                                  num_threads=threads)
        self._mesh: Any = cls(model_path=str(_verified(model_dir / MESH, MODELS[MESH])),
                              num_threads=threads)
        for interp in (self._detector, self._mesh):
            interp.allocate_tensors()
        self._lock = threading.Lock()

    def _run(self, interp: Any, x: np.ndarray) -> list[np.ndarray]:
        interp.set_tensor(interp.get_input_details()[0]["index"], x[None])
        interp.invoke()
        return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]

    def detect(self, rgb: np.ndarray, paddings: tuple[float, ...] = PADDINGS
               ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Detections in ``rgb``'s pixels: box (x0, y0, x1, y1), key points (6, 2), score."""
        h, w = rgb.shape[:2]
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for pad in paddings:
            side = max(h, w) * pad
            scale = DETECT_INPUT / side
            small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
            sh, sw = small.shape[:2]
            canvas = np.zeros((DETECT_INPUT, DETECT_INPUT, 3), np.float32) - 1.0
            oy, ox = (DETECT_INPUT - sh) // 2, (DETECT_INPUT - sw) // 2
            canvas[oy:oy + sh, ox:ox + sw] = small.astype(np.float32) / 127.5 - 1.0
            raw, logits = self._run(self._detector, canvas)
            boxes, points, scores = decode(raw, logits)
            if len(scores):
                offset = np.array([ox, oy], np.float32)
                boxes = (boxes * DETECT_INPUT - np.tile(offset, 2)) / scale
                points = (points * DETECT_INPUT - offset) / scale
                found.append((boxes, points, scores))
        if not found:
            return []
        return weighted_nms(*(np.concatenate(parts) for parts in zip(*found, strict=True)))

    def mesh(self, rgb: np.ndarray, box: np.ndarray, points: np.ndarray
             ) -> tuple[np.ndarray, float]:
        """468 mesh points in ``rgb``'s pixels and the face-presence score, for the face
        the detector found at ``box`` with key points ``points``."""
        (rx, ry), (lx, ly) = points[0], points[1]  # the person's right eye, then left
        angle = np.degrees(np.arctan2(ly - ry, lx - rx))  # turn so the eyes are level
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * MESH_SCALE
        matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle),
                                         MESH_INPUT / max(side, 1.0))
        matrix[:, 2] += (MESH_INPUT / 2 - cx, MESH_INPUT / 2 - cy)
        crop = cv2.warpAffine(rgb, matrix, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        outputs = self._run(self._mesh, crop.astype(np.float32) / 255.0)
        flat = next(o for o in outputs if o.size == 468 * 3).reshape(468, 3)[:, :2]
        presence = float(_sigmoid(next(o for o in outputs if o.size == 1)).reshape(-1)[0])
        inverse = cv2.invertAffineTransform(matrix)
        mapped = flat @ inverse[:, :2].T + inverse[:, 2]
        return mapped.astype(np.float32), presence

    def find(self, rgb: np.ndarray, *, paddings: tuple[float, ...] = PADDINGS,
             min_presence: float = MIN_PRESENCE) -> list[FaceMesh]:
        """Every face in ``rgb`` (RGB uint8) that the mesh confirms."""
        with self._lock:
            faces = []
            for box, points, score in self.detect(rgb, paddings):
                mesh, presence = self.mesh(rgb, box, points)
                if presence < min_presence:
                    log.debug("face at %s dropped: presence %.2f", box.round(), presence)
                    continue
                faces.append(FaceMesh(_grown(mesh, 0.0), score, mesh))
            return faces


@cache
def landmarker() -> FaceLandmarker:
    """The process's one FaceLandmarker."""
    return FaceLandmarker()
