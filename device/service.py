"""The device service: the camera (with retry), the installed pack's models and the
scanner, built once from the config. The dashboard and ``python -m device run``
hold one Service; ``reload_models`` is called after a flash or rollback.
"""

from __future__ import annotations

import logging
import threading

from device.cameras import Camera, CameraError, make_camera
from device.config import DeviceConfig
from device.models import ModelSet, ModelSetError
from device.packs.install import current_pack_dir
from device.pipeline import Scanner

log = logging.getLogger(__name__)


class Service:
    def __init__(self, config: DeviceConfig, camera: Camera, models: ModelSet | None) -> None:
        self.config = config
        self.camera = camera
        self.scanner = Scanner(config, camera, models)
        self.model_error: str | None = None
        self._lock = threading.Lock()

    @property
    def models(self) -> ModelSet | None:
        return self.scanner.models

    @property
    def pack_version(self) -> str | None:
        return self.scanner.models.pack_version if self.scanner.models else None

    @classmethod
    def from_config(cls, config: DeviceConfig, *, camera: Camera | None = None,
                    load_models: bool = True) -> Service:
        """Build the service. A missing or broken pack does not stop the device: it runs
        without models (``model_error`` says why) until a pack is flashed."""
        service = cls(config, camera or make_camera(config.camera), None)
        if load_models:
            try:
                service.reload_models()
            except ModelSetError as exc:  # reload_models recorded it as model_error
                log.error("no models loaded: %s", exc)
        return service

    def reload_models(self) -> str:
        """Load the current pack and swap it in; the old models stay if this fails.
        Returns the pack version now in use."""
        with self._lock:
            pack_dir = current_pack_dir(self.config.packs.dir)
            try:
                if pack_dir is None:
                    raise ModelSetError(f"no model pack is installed in {self.config.packs.dir}; "
                                        "install one with: python -m device flash PACK")
                models = ModelSet.from_pack_dir(pack_dir, self.config.grading.threads)
                models.warm_up()
            except ModelSetError as exc:
                self.model_error = str(exc)  # what the status page shows
                raise
            self.scanner.models = models  # one assignment: scans in flight keep the old set
            self.model_error = None
            log.info("using model pack %s", models.pack_version)
            return models.pack_version

    def camera_status(self) -> dict:
        return self.camera.status.to_dict()

    def open_camera(self) -> bool:
        """Try to open the camera now; False (and an error status) when it is not there."""
        try:
            self.camera.open()
        except CameraError as exc:
            log.warning("camera: %s", exc)
            return False
        return True

    def close(self) -> None:
        try:
            self.camera.close()
        except Exception as exc:  # closing a vanished camera must not stop shutdown
            log.warning("closing the camera failed: %s", exc)
