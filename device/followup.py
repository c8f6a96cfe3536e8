"""Scanning a followed lesion again (Flask-free): register, propose the crop, grade.

Before grading a follow-up photo the device registers it to the lesion's last kept
frame (device.vision.register) and, when the inlier check passes, grades the last crop
mapped into the new frame (crop mode box; the store records it as "registered").
Staff can still move that square (device.scan.recrop). When registration is refused the
photo is graded with the auto crop and the result says why: never a silent guess.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from device.config import CropMode
from device.scan.pipeline import ScanResult
from device.scan.recrop import FrameCache, FrameGone, scan_frame
from device.store.schema import Lesion
from device.vision.register import Registration, RegistrationConfig, register

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FollowupScan:
    lesion: Lesion
    result: ScanResult
    #: None when there was nothing to register to (the lesion's first photo).
    registration: Registration | None
    note: str

    @property
    def crop_origin(self) -> CropMode | None:
        """How the crop was chosen, for the store: registered, else the scan's own mode."""
        if self.registration is not None and self.registration.ok:
            return CropMode.REGISTERED
        return None

    @property
    def warn(self) -> bool:
        """Staff should look: registration was tried and refused."""
        return self.registration is not None and not self.registration.ok


def scan_lesion(scanner: Any, store: Any, cache: FrameCache, lesion: Lesion, visit_id: int,
                image: np.ndarray, config: RegistrationConfig | None = None) -> FollowupScan:
    """Grade ``image`` as a photo of ``lesion``: with its last crop mapped into it when
    registration finds it, else with the auto crop (and a note saying so)."""
    last = store.last_lesion_scan(lesion.id, before_visit=visit_id) or \
        store.last_lesion_scan(lesion.id)
    if last is None:
        if store.lesion_scans(lesion.id):  # scanned before, but no photo kept to aim at
            result = scanner.scan(image=image, mode=CropMode.AUTO)
            return FollowupScan(lesion, result, None, f"no photo of {lesion.label} is kept "
                                "from an earlier scan (purged, or photos are not kept), so "
                                "it could not be found again; used the auto crop: check the "
                                "square")
        result = scanner.scan(image=image)
        return FollowupScan(lesion, result, None, f"first photo of {lesion.label}: the crop "
                            "is the device's own; check it before saving")
    try:
        last_frame = scan_frame(last, store, cache)
    except FrameGone as exc:
        result = scanner.scan(image=image, mode=CropMode.AUTO)
        return FollowupScan(lesion, result, None, f"{exc}; used the auto crop: check the square")
    reg = register(last_frame, last.crop_box, image, config)
    if reg.ok and reg.box is not None:
        result = scanner.scan(image=image, box=reg.box)
        note = f"{reg.message()}: the square is where {lesion.label} was last time; move it " \
               "if it is off"
    else:
        result = scanner.scan(image=image, mode=CropMode.AUTO)
        note = f"{reg.message()}. Used the auto crop instead: check the square"
    result.timings_ms["register"] = reg.ms
    log.info("lesion %s follow-up: %s (%.0f ms)", lesion.id, reg.status.value, reg.ms)
    return FollowupScan(lesion, result, reg, note)
