"""What the app keeps in memory about recent scans (``live()``, one per app): each
scan's crop for a moment after it (when images are not kept) and the stage timings the
status page shows. Written by the scan pages (device.web.scan, device.web.recrop, the
API), read by the status and visit pages. Nothing here is needed after a restart:
what the result page shows is in the store.

The scan's full details (``ScanResult.to_dict``) are kept too, for the JSON API's
reply and the crop fallback line of the result page.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from flask import current_app

from device.core.imageio import encode_jpeg
from device.scan.pipeline import ScanResult

#: Recent scans whose details and crops are kept.
KEEP = 20


@dataclass
class LiveState:
    """Per-app scan state: recent scan details for the result page and stage timings
    for the status page."""

    results: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    crops: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    timings: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10))

    def remember(self, scan_id: int | None, result: ScanResult) -> None:
        self.timings.append({"time": result.created, **{
            k: round(v, 1) for k, v in result.timings_ms.items()}})
        if scan_id is None:
            return
        self.results[scan_id] = result.to_dict()
        if result.crop_image is not None:
            self.crops[scan_id] = encode_jpeg(result.crop_image, max_side=480)
        for cache in (self.results, self.crops):
            while len(cache) > KEEP:
                cache.popitem(last=False)


def live() -> LiveState:
    return current_app.extensions.setdefault("atopiscan.live", LiveState())


def cached_crop(scan_id: int) -> bytes | None:
    return live().crops.get(scan_id)
