"""Raspberry Pi camera through picamera2 (imported only when this source is opened).

Erythema is colour, so colour must be the same from shot to shot: after opening
we let auto-exposure and auto-white-balance settle, read the values they chose
from the frame metadata, then switch both off and pin those values.

One configuration serves both uses, so the lock holds for both: the main stream at
the configured (full) resolution is the still a scan grades (``read``), and the
ISP's low-resolution output (``lores``, YUV420: the only format it gives on a Pi 4)
feeds the live preview (``read_preview``) without scaling the full frame on the CPU.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import cv2
import numpy as np

from device.cameras.base import CameraError, CameraState, CameraStatus

log = logging.getLogger(__name__)

#: Frames to discard after locking so the pinned controls are in effect.
LOCK_FLUSH_FRAMES = 3


class PiCamera2Camera:
    def __init__(self, *, width: int = 1280, height: int = 960,
                 settle_seconds: float = 1.0, preview_size: tuple[int, int] = (640, 480)) -> None:
        self.width, self.height = width, height
        # The lores output keeps main's aspect (the preview's square overlays must match the
        # still), is no larger than main, and YUV420 needs even sides.
        scale = min(1.0, preview_size[0] / width, preview_size[1] / height)
        pw, ph = round(width * scale), round(height * scale)
        self.preview_size = (pw - pw % 2, ph - ph % 2)
        self.settle_seconds = settle_seconds
        self.status = CameraStatus()
        self.locked_controls: dict[str, Any] = {}
        self._cam: Any = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraError("picamera2 is not installed; on Raspberry Pi OS: "
                              "sudo apt install python3-picamera2") from exc
        cam = Picamera2()
        try:
            # picamera2's naming quirk: "BGR888" gives numpy arrays in R, G, B order.
            # Three buffers: with the still configuration's one, every preview frame
            # would wait for the next sensor frame.
            config = cam.create_still_configuration(
                main={"size": (self.width, self.height), "format": "BGR888"},
                lores={"size": self.preview_size, "format": "YUV420"}, buffer_count=3)
            cam.configure(config)
            cam.start()
            time.sleep(self.settle_seconds)
            self.locked_controls = self._lock(cam)
            for _ in range(LOCK_FLUSH_FRAMES):
                cam.capture_metadata()
        except Exception:
            cam.close()
            raise
        self._cam = cam
        self.status.state = CameraState.OK
        log.info("picamera2 open %dx%d, locked %s", self.width, self.height,
                 self.locked_controls)

    @staticmethod
    def _lock(cam: Any) -> dict[str, Any]:
        meta = cam.capture_metadata()
        controls: dict[str, Any] = {"AeEnable": False, "AwbEnable": False}
        for key in ("ExposureTime", "AnalogueGain", "ColourGains"):
            if key in meta:
                controls[key] = meta[key]
            else:
                log.warning("picamera2 metadata has no %s; it is not pinned", key)
        cam.set_controls(controls)
        return controls

    def read(self) -> np.ndarray:
        if self._cam is None:
            raise CameraError("picamera2 camera is not open")
        frame = np.asarray(self._cam.capture_array("main"))
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = frame[..., :3]
        self.status.frames += 1
        return frame

    def read_preview(self) -> np.ndarray:
        """A preview frame (RGB) from the lores stream, taken under the same locked controls."""
        if self._cam is None:
            raise CameraError("picamera2 camera is not open")
        w, h = self.preview_size
        yuv = np.asarray(self._cam.capture_array("lores"))
        if yuv.ndim != 2 or yuv.shape[0] != h * 3 // 2:
            raise CameraError(f"picamera2 lores stream gave shape {yuv.shape}, expected "
                              f"YUV420 ({h * 3 // 2}, {w})")
        # Rows may be padded to the ISP's stride: drop the padding after converting.
        return cv2.cvtColor(np.ascontiguousarray(yuv), cv2.COLOR_YUV2RGB_I420)[:, :w]

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None
        self.status.state = CameraState.CLOSED
