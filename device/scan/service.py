"""The device service: the camera (with retry), the installed pack's models and the
scanner, built once from the config. The dashboard and ``python -m device run``
hold one Service; ``load_or_roll_back`` is called at start and after a flash.

A pack can pass every install check and still fail to load in the running
service (a model the interpreter refuses at full size, memory). Then, as Home
Assistant's Supervisor does after a failed health check, the service switches
the disk back to the previous pack by itself, loads it, and records a
``RollbackNote`` that the status page shows.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any

from device.cameras import Camera, make_camera
from device.config import DeviceConfig
from device.grading.models import ModelSet, ModelSetError, NoPackDirError, PacksFailedError
from device.packs.install import InstallError, current_pack_dir, rollback
from device.scan.pipeline import Scanner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollbackNote:
    """An automatic rollback: which pack failed to load, why, and what runs now."""

    time: str
    failed_pack: str  # the pack id that did not load
    error: str
    running: str | None  # the pack version in use after the rollback (None: nothing loads)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Service:
    def __init__(self, config: DeviceConfig, camera: Camera, models: ModelSet | None) -> None:
        self.config = config
        self.camera = camera
        self.scanner = Scanner(config, camera, models)
        self.model_error: str | None = None
        self.rollback_note: RollbackNote | None = None
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
                service.load_or_roll_back()
            except ModelSetError as exc:  # reload_models recorded it as model_error
                log.error("no models loaded: %s", exc)
        return service

    def load_or_roll_back(self) -> str:
        """Load the current pack; when it fails and a previous pack exists, make that
        current again, load it and record a RollbackNote. Returns the version in use;
        raises ModelSetError when nothing could be loaded."""
        try:
            version = self.reload_models()
        except NoPackDirError:
            raise  # nothing installed: nothing failed, nothing to roll back
        except ModelSetError as exc:
            failed, error = current_pack_dir(self.config.packs.dir), str(exc)
            try:
                rollback(self.config.packs.dir)
            except (InstallError, OSError) as why:
                log.error("pack %s failed to load and cannot be rolled back: %s",
                          failed.name if failed else "?", why)
                raise exc from None  # e.g. no previous pack: nothing to return to
        else:
            self.rollback_note = None  # a pack that loads ends the story of the last one
            return version
        try:
            version = self.reload_models()
        except ModelSetError as again:
            version = self.models.pack_version if self.models is not None else None
            if version is None:  # neither loads: leave the disk as the technician left it
                try:
                    rollback(self.config.packs.dir)
                except (InstallError, OSError) as why:
                    log.error("could not undo the rollback: %s", why)
                self.model_error = f"{error}; the previous pack did not load either ({again})"
                self.scanner.load_failure = PacksFailedError(
                    f"current pack {failed.name if failed else '?'}: {error}; previous pack: "
                    f"{again}")
        self.rollback_note = RollbackNote(
            dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            failed.name if failed is not None else "?", error, version)
        log.error("pack %s failed to load (%s); %s", self.rollback_note.failed_pack, error,
                  f"rolled back to pack {version}" if version else "the previous pack failed too")
        if version is None:
            raise PacksFailedError(self.model_error or error)
        return version

    def reload_models(self) -> str:
        """Load the current pack and swap it in; the old models stay if this fails.
        Returns the pack version now in use."""
        with self._lock:
            pack_dir = current_pack_dir(self.config.packs.dir)
            try:
                if pack_dir is None:
                    raise NoPackDirError(f"no model pack is installed in {self.config.packs.dir}; "
                                         "install one with: python -m device flash PACK")
                models = ModelSet.from_pack_dir(pack_dir, self.config.grading.threads)
                models.warm_up()
            except ModelSetError as exc:
                self.model_error = str(exc)  # what the status page shows
                self.scanner.load_failure = exc  # what a scan says while no models are loaded
                raise
            self.scanner.models = models  # one assignment: scans in flight keep the old set
            self.scanner.load_failure = None
            self.model_error = None
            log.info("using model pack %s", models.pack_version)
            return models.pack_version

    def camera_status(self) -> dict:
        return self.camera.status.to_dict()

    def close(self) -> None:
        try:
            self.camera.close()
        except Exception as exc:  # closing a vanished camera must not stop shutdown
            log.warning("closing the camera failed: %s", exc)
