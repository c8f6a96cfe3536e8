"""A camera that cycles through the image files of a folder (demo and tests)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from device.cameras.base import CameraError, CameraState, CameraStatus, SceneHold
from device.core.imageio import PHOTO_SUFFIXES, ImageError, read_image

log = logging.getLogger(__name__)

def read_rgb(path: Path) -> np.ndarray | None:
    """Decode an image file to RGB uint8 (``read_image``), or None when it is not usable."""
    try:
        return read_image(path)
    except ImageError as exc:
        log.debug("folder camera: %s", exc)
        return None


class FolderCamera:
    def __init__(self, folder: Path, scene_seconds: float = 0.0) -> None:
        self.folder = Path(folder)
        self._scene = SceneHold(scene_seconds)
        self.status = CameraStatus()
        self.last_path: Path | None = None
        self._files: list[Path] = []
        self._next = 0

    def _scan_folder(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"camera folder {self.folder} does not exist; set camera.folder")
        self._files = sorted(p for p in self.folder.rglob("*")
                             if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        if not self._files:
            raise CameraError(f"camera folder {self.folder} holds no images "
                              f"({', '.join(PHOTO_SUFFIXES)})")
        self._next = 0

    def open(self) -> None:
        self._scan_folder()
        self.status.state = CameraState.OK
        log.info("folder camera: %d images in %s", len(self._files), self.folder)

    def read(self) -> np.ndarray:
        frame = self._scene.get(self._next_image)
        self.status.frames += 1
        return frame

    def _next_image(self) -> np.ndarray:
        if not self._files:
            self._scan_folder()
        for _ in range(len(self._files)):
            if self._next >= len(self._files):
                self._scan_folder()  # the folder may have changed; pick up new files
            path = self._files[self._next]
            self._next += 1
            image = read_rgb(path) if path.is_file() else None
            if image is None:
                log.warning("folder camera: skipping %s (not a readable image)", path)
                continue
            self.last_path = path
            return image
        raise CameraError(f"camera folder {self.folder}: none of its images could be read")

    def close(self) -> None:
        self.status.state = CameraState.CLOSED
