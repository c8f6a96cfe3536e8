"""Camera sources behind one small interface (``Camera``: open, read -> RGB uint8, close,
status), and ``make_camera`` to build the one a config names, wrapped for retry."""

from __future__ import annotations

from device.cameras.base import (
    Camera,
    CameraError,
    CameraState,
    CameraStatus,
    RetryingCamera,
    SceneHold,
    as_rgb_frame,
    has_preview_stream,
)
from device.cameras.folder import FolderCamera, read_rgb
from device.cameras.opencv import OpenCVCamera
from device.cameras.picam import PiCamera2Camera
from device.cameras.synthetic import SyntheticCamera, render_skin_frame
from device.config import CameraConfig, CameraSource

__all__ = [
    "Camera", "CameraError", "CameraState", "CameraStatus", "FolderCamera", "OpenCVCamera",
    "PiCamera2Camera", "RetryingCamera", "SceneHold", "SyntheticCamera", "as_rgb_frame",
    "has_preview_stream", "make_camera",
    "read_rgb", "render_skin_frame",
]


def make_camera(config: CameraConfig, *, retry: bool = True) -> Camera:
    """The camera the config names; wrapped in RetryingCamera unless ``retry`` is False."""
    camera: Camera
    if config.source is CameraSource.SYNTHETIC:
        camera = SyntheticCamera(config.width, config.height, seed=config.seed,
                                 scene_seconds=config.scene_seconds)
    elif config.source is CameraSource.FOLDER:
        assert config.folder is not None  # the schema requires it for this source
        camera = FolderCamera(config.folder, scene_seconds=config.scene_seconds)
    elif config.source is CameraSource.OPENCV:
        camera = OpenCVCamera(config.device, width=config.width, height=config.height,
                              settle_seconds=config.settle_seconds)
    else:
        camera = PiCamera2Camera(width=config.width, height=config.height,
                                 settle_seconds=config.settle_seconds,
                                 preview_size=(config.preview_width, config.preview_height))
    if not retry:
        return camera
    return RetryingCamera(camera, retry_seconds=config.retry_seconds,
                          name=f"{config.source.value} camera")
