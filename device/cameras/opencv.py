"""OpenCV VideoCapture: a USB camera by index, or a Jetson CSI camera through a
GStreamer pipeline string (e.g. ``nvarguscamerasrc ! ... ! appsink``)."""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from device.cameras.base import CameraError, CameraState, CameraStatus

log = logging.getLogger(__name__)


class OpenCVCamera:
    def __init__(self, device: str = "0", *, width: int = 1280, height: int = 960,
                 settle_seconds: float = 1.0) -> None:
        self.device = device
        self.width, self.height = width, height
        self.settle_seconds = settle_seconds
        self.status = CameraStatus()
        self._cap: cv2.VideoCapture | None = None

    @property
    def is_gstreamer(self) -> bool:
        return not self.device.strip().isdigit()

    def open(self) -> None:
        if self.is_gstreamer:
            cap = cv2.VideoCapture(self.device, cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(int(self.device))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if not cap.isOpened():
            cap.release()
            kind = "GStreamer pipeline" if self.is_gstreamer else "camera index"
            raise CameraError(f"OpenCV could not open {kind} {self.device!r}")
        self._cap = cap
        # USB cameras run their own auto-exposure; the first frames are dark or
        # colour-cast until it settles, so read and discard for settle_seconds.
        end = time.monotonic() + self.settle_seconds
        while time.monotonic() < end:
            cap.grab()
        self.status.state = CameraState.OK

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise CameraError("OpenCV camera is not open")
        # VideoCapture keeps a small queue of old frames: drop one so the still
        # is taken now, not when the previous scan ended.
        self._cap.grab()
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"OpenCV camera {self.device!r} returned no frame "
                              "(unplugged or in use?)")
        self.status.frames += 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def read_preview(self) -> np.ndarray:
        """The next frame, for the live preview: read continuously, the driver's queue
        stays fresh, so no frame is dropped first (that halves the frame rate)."""
        if self._cap is None:
            raise CameraError("OpenCV camera is not open")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"OpenCV camera {self.device!r} returned no frame "
                              "(unplugged or in use?)")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.status.state = CameraState.CLOSED
