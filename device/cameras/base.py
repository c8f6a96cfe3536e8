"""The camera interface every source implements, its status, and the retry wrapper.

A camera that fails or vanishes must never crash the device: ``RetryingCamera``
turns any failure into an error status plus a ``CameraError`` for that one
scan, and reopens the camera once ``retry_seconds`` have passed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

import numpy as np

from device.core.imageio import ImageError, as_rgb

log = logging.getLogger(__name__)


class CameraError(RuntimeError):
    """The camera could not deliver a frame; the message says what to check."""


class CameraState(str, Enum):
    CLOSED = "closed"
    OK = "ok"
    ERROR = "error"


@dataclass
class CameraStatus:
    state: CameraState = CameraState.CLOSED
    message: str = ""
    frames: int = 0
    failures: int = 0
    since: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {"state": self.state.value, "message": self.message, "frames": self.frames,
                "failures": self.failures, "since": self.since}


@runtime_checkable
class Camera(Protocol):
    """A source of RGB uint8 frames (H, W, 3)."""

    status: CameraStatus

    def open(self) -> None: ...

    def read(self) -> np.ndarray: ...

    def close(self) -> None: ...


def as_rgb_frame(frame: object, origin: str) -> np.ndarray:
    """``frame`` as RGB uint8 (H, W, 3), an alpha or padding channel dropped
    (``device.core.imageio.as_rgb``), or a CameraError naming the camera."""
    try:
        return as_rgb(frame, f"{origin} frame")
    except ImageError as exc:
        shape = getattr(frame, "shape", None)
        raise CameraError(f"{origin} gave a frame that is not an RGB uint8 image "
                          f"(shape {shape}): {exc}") from exc


def has_preview_stream(camera: object) -> bool:
    """Whether ``camera`` has a separate low-resolution stream for the live preview
    (``read_preview``), so scans take their own full-resolution still."""
    inner = getattr(camera, "has_preview_stream", None)
    if isinstance(inner, bool):
        return inner
    return callable(getattr(camera, "read_preview", None))


class SceneHold:
    """Keeps one generated frame or photo "in front of the camera" for ``seconds``, so the
    demo's synthetic and folder sources can be aimed at like a real lesion; 0 gives a new
    scene at every read. Each read returns a copy (callers may draw on it)."""

    def __init__(self, seconds: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._frame: np.ndarray | None = None
        self._until = 0.0

    def get(self, make: Callable[[], np.ndarray]) -> np.ndarray:
        now = self.clock()
        if self._frame is None or self.seconds <= 0 or now >= self._until:
            self._frame = make()
            self._until = now + self.seconds
        return self._frame.copy()


class RetryingCamera:
    """Wraps a camera: opens it lazily, reports failures as status, reopens after a pause.

    ``clock`` and the wrapped camera are injectable so tests need no sleeping.
    Thread-safe: the dashboard's preview, a scan and the service's shutdown may
    reach the camera from different threads, and no camera driver here is safe
    to call concurrently, so open/read/close hold one lock.
    """

    def __init__(self, camera: Camera, *, retry_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, name: str | None = None) -> None:
        self.camera = camera
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.name = name or type(camera).__name__
        self.status = CameraStatus()
        self._open = False
        self._next_try = 0.0
        self._lock = threading.RLock()  # re-entrant: read() opens

    def _fail(self, exc: BaseException, during: str) -> CameraError:
        self.status.state = CameraState.ERROR
        self.status.failures += 1
        self.status.message = (f"{self.name}: {during} failed ({exc}); retrying in "
                               f"{self.retry_seconds:g} s. Check the cable and that no other "
                               "program uses the camera")
        self.status.since = time.time()
        self._next_try = self.clock() + self.retry_seconds
        log.warning("%s", self.status.message)
        try:
            self.camera.close()
        except Exception as close_exc:  # a vanished camera often fails to close too
            log.debug("%s: close after failure also failed: %s", self.name, close_exc)
        self._open = False
        return CameraError(self.status.message)

    def open(self) -> None:
        with self._lock:
            self._open_locked()

    def _open_locked(self) -> None:
        if self._open:
            return
        wait = self._next_try - self.clock()
        if wait > 0:
            raise CameraError(f"{self.status.message or self.name + ': unavailable'} "
                              f"(next try in {wait:.1f} s)")
        try:
            self.camera.open()
        except Exception as exc:
            raise self._fail(exc, "open") from exc
        self._open = True
        self.status.state = CameraState.OK
        self.status.message = f"{self.name}: open"
        self.status.since = time.time()

    def read(self) -> np.ndarray:
        """A full-resolution frame (what a scan grades)."""
        return self._read("read", "capture")

    @property
    def has_preview_stream(self) -> bool:
        return has_preview_stream(self.camera)

    def read_preview(self) -> np.ndarray:
        """A frame of the camera's low-resolution preview stream, or an ordinary frame
        when it has none (see ``has_preview_stream``)."""
        return self._read("read_preview" if self.has_preview_stream else "read", "preview")

    def _read(self, method: str, during: str) -> np.ndarray:
        with self._lock:
            self._open_locked()
            try:
                frame = as_rgb_frame(getattr(self.camera, method)(), self.name)
            except Exception as exc:
                raise self._fail(exc, during) from exc
            self.status.frames += 1
            return frame

    def close(self) -> None:
        with self._lock:
            if self._open:
                try:
                    self.camera.close()
                finally:
                    self._open = False
            self.status.state = CameraState.CLOSED
            self.status.message = f"{self.name}: closed"
