"""What the running device holds in memory about its scans, Flask-free: the live preview
(one ``PreviewHub`` around the camera), the last captured frames (``FrameCache``, for
moving the crop square) and the recent scans (their crops for a moment, when images are
not kept, and the stage timings the status page shows).

One ``ScanSession`` per running dashboard (``device.web.create_app`` makes it; the web
layer only calls it). Nothing here is needed after a restart: what the result page and
the JSON API show of a scan is in the store (``RegionScan.result``).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

from device.cameras.base import Camera
from device.config import DeviceConfig
from device.core.imageio import encode_jpeg
from device.scan.pipeline import ScanResult
from device.scan.preview import PreviewHub, StreamSettings
from device.scan.recrop import FrameCache
from device.vision.hints import HintEngine

#: Recent scans whose crops are kept in memory.
KEEP_CROPS = 20
#: Recent scans whose stage timings the status page lists.
KEEP_TIMINGS = 10
#: Longest side of a crop kept in memory.
CROP_SIDE = 480


@dataclass(frozen=True)
class StageTimes:
    """One scan's stage timings (ms, device.scan.pipeline.STAGES) and when it ran."""

    time: str
    ms: dict[str, float]

    def to_dict(self) -> dict[str, str | float]:
        return {"time": self.time, **{k: round(v, 1) for k, v in self.ms.items()}}


class ScanSession:
    """The preview hub (made on first use), the frame cache and the recent scans."""

    def __init__(self, config: DeviceConfig, camera: Camera, *,
                 frames: FrameCache | None = None) -> None:
        self.config = config
        self.camera = camera
        self.frames = frames or FrameCache()
        self._hub: PreviewHub | None = None
        self._crops: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._timings: collections.deque[StageTimes] = collections.deque(maxlen=KEEP_TIMINGS)
        self._lock = threading.Lock()

    def hub(self) -> PreviewHub:
        """The live preview, started around the camera on first use."""
        with self._lock:
            if self._hub is None:
                cfg = self.config
                self._hub = PreviewHub(
                    self.camera, HintEngine(cfg.quality, cfg.crop, colour=cfg.colour),
                    StreamSettings(max_side=max(cfg.camera.preview_width,
                                                cfg.camera.preview_height)))
            return self._hub

    @property
    def hub_started(self) -> PreviewHub | None:
        """The hub if something asked for it, else None (nothing to close or measure)."""
        return self._hub

    def remember(self, scan_id: int | None, result: ScanResult) -> None:
        """A scan ran: keep its timings; when it was saved as ``scan_id``, its crop for a
        moment and its frame (staff may move the crop square on it next)."""
        with self._lock:
            self._timings.append(StageTimes(result.created, dict(result.timings_ms)))
            if scan_id is None:
                return
            if result.crop_image is not None:
                self._crops[scan_id] = encode_jpeg(result.crop_image, max_side=CROP_SIDE)
                self._crops.move_to_end(scan_id)
                while len(self._crops) > KEEP_CROPS:
                    self._crops.popitem(last=False)
        if result.image is not None:
            self.frames.put(scan_id, result.image)

    def crop(self, scan_id: int) -> bytes | None:
        """The JPEG of a recent scan's crop, or None when it is no longer in memory."""
        with self._lock:
            return self._crops.get(scan_id)

    def recent_timings(self) -> list[StageTimes]:
        """The last scans' stage timings, newest first."""
        with self._lock:
            return list(self._timings)[::-1]

    def forget(self) -> None:
        """Drop the frames and crops held in memory (what a restart does)."""
        with self._lock:
            self._crops.clear()
        self.frames = FrameCache(self.frames.size)

    def close(self) -> None:
        """End the preview (its open streams and the capture thread)."""
        with self._lock:
            hub = self._hub
        if hub is not None:
            hub.close()
