"""Photo pixels for the studio: decode with EXIF orientation applied, encode for the browser.

Coordinates everywhere in the studio are pixels of the photo as displayed (EXIF orientation
applied), the same pixels the trainer's reader decodes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from trainer.label.models import LabelError

log = logging.getLogger(__name__)

#: Larger photos are refused (a decompression bomb would take the workstation's memory).
MAX_PIXELS = 100_000_000


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB (H, W, 3), EXIF orientation applied; LabelError saying what is wrong."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise LabelError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise LabelError(f"{path}: empty file")
    # IMREAD_COLOR applies the EXIF orientation of a JPEG (IMREAD_UNCHANGED would not).
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise LabelError(f"{path}: not a readable JPEG or PNG image (corrupt or another format)")
    if bgr.shape[0] * bgr.shape[1] > MAX_PIXELS:
        raise LabelError(f"{path}: {bgr.shape[1]}x{bgr.shape[0]} pixels is over the "
                         f"{MAX_PIXELS // 1_000_000} megapixel limit; resize it first")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise LabelError("could not encode a JPEG")
    return buf.tobytes()


def resize_max(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longer side is at most ``max_side`` (never enlarges)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
