"""The follow-up benchmark: does registration find a lesion again, visit after visit?

N synthetic lesions (device.tools.visit_synth) over 3 visits each. The first visit's crop is
the true box (staff framed it). At each follow-up the new frame is registered to the
last visit's frame and the last crop is mapped into it (device.vision.register); a refusal
falls back to the auto crop, as the device does. The crop staff end the visit with is
the proposal when it overlaps the lesion (IoU >= 0.5: they keep it), else the true box
(they move the square). Reported over the follow-up visits:

* ``registered``: share where registration succeeded;
* ``iou_registered``: share whose proposed crop (registered, else auto) has IoU >= 0.5;
* ``iou_auto``: the same share for the auto crop alone;
* ``wrong_accepted``: share of accepted registrations whose crop has IoU < 0.3;
* ``wrong_patient_accepted``: share of registrations to *another* patient's lesion
  that were accepted (one per lesion; each should be refused).

Timing: registration's median, and its ratio to the rest of the scan in the same run
(with a model pack: the whole scan; without one: quality check and auto crop only,
which makes the ratio an upper bound). Synthetic images: not a clinical figure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from device.config import CropConfig, CropMode, QualityConfig
from device.tools.visit_synth import render_followup
from device.vision.crop import auto_box, iou
from device.vision.register import RegistrationConfig, register

log = logging.getLogger(__name__)

VISITS = 3
GOOD_IOU = 0.5
WRONG_IOU = 0.3


@dataclass(frozen=True)
class FollowupReport:
    lesions: int
    followups: int
    registered: float
    iou_registered: float
    iou_auto: float
    wrong_accepted: float
    wrong_patient_accepted: float
    register_ms_median: float
    register_ms_p90: float
    rest_of_scan_ms_median: float
    rest_of_scan: str            # what "the rest of the scan" timed
    register_share: float        # register ms / rest-of-scan ms, medians
    frame_size: tuple[int, int]

    def to_dict(self) -> dict:
        return {**asdict(self), "frame_size": list(self.frame_size)}

    def format(self) -> str:
        return "\n".join([
            f"{self.lesions} synthetic lesions x {VISITS} visits, {self.followups} follow-ups, "
            f"frames {self.frame_size[0]}x{self.frame_size[1]} (synthetic: not a clinical figure)",
            f"registered:             {self.registered:.1%}",
            f"iou_registered (>=0.5): {self.iou_registered:.1%}  (proposed crop; auto crop "
            "where registration refused)",
            f"iou_auto (>=0.5):       {self.iou_auto:.1%}",
            f"wrong_accepted (<0.3):  {self.wrong_accepted:.1%}",
            f"wrong patient accepted: {self.wrong_patient_accepted:.1%}",
            f"registration: median {self.register_ms_median:.1f} ms, p90 "
            f"{self.register_ms_p90:.1f} ms; rest of the scan ({self.rest_of_scan}) median "
            f"{self.rest_of_scan_ms_median:.1f} ms; ratio {self.register_share:.2f}",
        ])


def _rest_of_scan(scanner, frame: np.ndarray) -> float | None:
    """The scan's own time for ``frame`` (ms), or None without a scanner."""
    if scanner is None:
        return None
    result = scanner.scan(image=frame)
    return result.timings_ms["total"]


def run_followup_bench(n: int, *, seed: int = 0, width: int = 1280, height: int = 960,
                       scanner=None, config: RegistrationConfig | None = None,
                       quality: QualityConfig | None = None) -> FollowupReport:
    """Run the benchmark over ``n`` lesions. ``scanner`` (a device.scan.pipeline.Scanner with
    models) times the whole scan; without it, quality check and auto crop are timed."""
    crop_config = CropConfig(mode=CropMode.AUTO)
    registered = good_reg = good_auto = wrong = wrong_patient = 0
    reg_ms: list[float] = []
    rest_ms: list[float] = []
    followups = 0
    for i in range(n):
        photos = render_followup(seed + i, VISITS, width=width, height=height)
        final_box = photos[0].box
        for k in range(1, VISITS):
            last, now = photos[k - 1], photos[k]
            followups += 1
            reg = register(last.frame, final_box, now.frame, config)
            reg_ms.append(reg.ms)
            t = time.perf_counter()
            auto = auto_box(now.frame, crop_config)
            auto_ms = (time.perf_counter() - t) * 1000.0
            scan_ms = _rest_of_scan(scanner, now.frame)
            if scan_ms is None:
                from device.vision.quality import check_quality

                t = time.perf_counter()
                check_quality(now.frame, quality or QualityConfig())
                scan_ms = (time.perf_counter() - t) * 1000.0 + auto_ms
            rest_ms.append(scan_ms)
            proposed = reg.box if reg.ok and reg.box else auto.box
            score = iou(proposed, now.box)
            registered += reg.ok
            good_reg += score >= GOOD_IOU
            good_auto += iou(auto.box, now.box) >= GOOD_IOU
            wrong += reg.ok and score < WRONG_IOU
            final_box = proposed if score >= GOOD_IOU else now.box
        stranger = render_followup(seed + i + 1_000_003, 2, width=width, height=height)[1]
        wrong_patient += register(photos[0].frame, photos[0].box, stranger.frame, config).ok
    reg_med = float(np.median(reg_ms))
    rest_med = float(np.median(rest_ms))
    return FollowupReport(
        lesions=n, followups=followups, registered=registered / followups,
        iou_registered=good_reg / followups, iou_auto=good_auto / followups,
        wrong_accepted=wrong / followups, wrong_patient_accepted=wrong_patient / n,
        register_ms_median=reg_med, register_ms_p90=float(np.percentile(reg_ms, 90)),
        rest_of_scan_ms_median=rest_med,
        rest_of_scan="whole scan with the model pack" if scanner is not None
        else "no model pack: quality check + auto crop only",
        register_share=reg_med / max(rest_med, 1e-9), frame_size=(width, height))
