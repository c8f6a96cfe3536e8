"""The recrop: grading the captured frame again inside a crop square staff moved
(Flask-free). One word, "recrop", names this action in the code, the store, the API and
the audit; only the stored crop mode says ``moved``.

After Capture the frame is frozen: staff drag or resize the square over it and press
"Grade this square". No new photo is taken: the same frame is graded with their box
(crop mode box), as often as they like, and the scan records the crop as moved, by
whom (``Store.recrop_scan``). The frame comes from ``FrameCache`` (the exact pixels,
kept in memory for the last few captures), else from the full frame the store kept
on disk (JPEG: the grades may differ a little from the original pixels').
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from device.core.errors import Conflict, InvalidInput, NotFound
from device.core.imageio import ImageError, read_image
from device.scan.pipeline import ScanResult
from device.vision.crop import CropError, clip_box

log = logging.getLogger(__name__)

#: Captured frames kept in memory (a 1280x960 frame is 3.7 MB).
KEEP_FRAMES = 4


class FrameGone(NotFound):
    """The captured frame of a scan is no longer kept: take the photo again."""


class RecropRefused(InvalidInput):
    """The moved square could not be graded (bad box, quality refused)."""


class FrameCache:
    """The last ``size`` captured frames by scan id (thread-safe)."""

    def __init__(self, size: int = KEEP_FRAMES) -> None:
        self.size = size
        self._frames: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, scan_id: int, frame: np.ndarray) -> None:
        with self._lock:
            self._frames[scan_id] = frame
            self._frames.move_to_end(scan_id)
            while len(self._frames) > self.size:
                self._frames.popitem(last=False)

    def get(self, scan_id: int) -> np.ndarray | None:
        with self._lock:
            return self._frames.get(scan_id)


def scan_frame(scan: Any, store: Any, cache: FrameCache) -> np.ndarray:
    """The frame scan ``scan`` (a RegionScan) was graded from, or FrameGone."""
    frame = cache.get(scan.id)
    if frame is not None:
        return frame
    if scan.frame_path:
        path = store.data_dir / scan.frame_path
        if path.is_file():
            try:
                return read_image(path, what=f"the frame of scan {scan.id}")
            except ImageError as exc:
                log.warning("scan %s: its kept frame is unreadable: %s", scan.id, exc)
    raise FrameGone(f"the photo of scan {scan.id} is no longer kept (the device restarted, or "
                    "full frames are not stored); capture the region again to move the square")


@dataclass(frozen=True)
class Recrop:
    scan: Any            # the updated RegionScan
    result: ScanResult   # the new grading (crop, grades, probabilities)


def recrop(scanner: Any, store: Any, cache: FrameCache, scan_id: int,
            box: tuple[float, float, float, float], user: str) -> Recrop:
    """Grade scan ``scan_id``'s frame again inside ``box`` (x, y, w, h in frame pixels)
    and record it as a crop moved by ``user``."""
    scan = store.get_scan(scan_id)
    if (scan.model_grades and all(g is None for g in scan.model_grades.values())
            and not scan.abstained):
        raise Conflict(f"scan {scan_id} was recorded by hand (no photo): nothing to recrop")
    frame = scan_frame(scan, store, cache)
    h, w = frame.shape[:2]
    try:
        clip_box(box, h, w)
    except CropError as exc:
        raise RecropRefused(f"{exc}; drag the square onto the photo") from exc
    result = scanner.scan(image=frame, box=tuple(box))
    if not result.graded or result.crop is None or result.crop_image is None:
        reasons = "; ".join(result.quality.reasons) or (
            result.abstention.message() if result.abstained and result.abstention
            else "the square could not be graded")
        raise RecropRefused(f"not graded: {reasons}")
    record = result.record()  # what the store keeps, whole and as the row's grades
    updated = store.recrop_scan(
        scan_id, grades={s: int(g.grade) for s, g in record.grades.items()},
        probs={s: list(g.probs) for s, g in record.grades.items()}, review=record.review,
        image=result.crop_image, box=result.crop.box, user=user,
        review_reasons={s: list(g.review_reasons) for s, g in record.grades.items()},
        result=record)
    log.info("%s recropped scan %s to %s", user, scan_id, result.crop.box)
    return Recrop(updated, result)
