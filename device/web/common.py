"""Small helpers the route modules share: the app context (``WebContext``), store errors
as HTTP errors, a scan's failures as HTTP errors."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from flask import abort, current_app

from device.cameras import CameraError
from device.core.errors import http_status
from device.grading.models import ModelSetError
from device.scan.pipeline import ScanError
from device.scan.session import ScanSession
from device.web import errorlog
from device.web.users import UserStore

if TYPE_CHECKING:
    from device.actions import Actor
    from device.config import DeviceConfig
    from device.scan.service import Service
    from device.store import Store
    from device.store.purger import Purger
    from device.web.tls import TlsSetup

log = logging.getLogger(__name__)


@dataclass
class WebContext:
    """What the routes need, kept on ``app.extensions['atopiscan']`` (``create_app``)."""

    config: DeviceConfig
    service: Service  # camera, scanner, models, reload_models
    store: Store
    users: UserStore
    data_dir: Path
    errors: errorlog.RingBufferHandler
    scans: ScanSession  # the preview, the captured frames and the recent scans
    tls: TlsSetup | None = None  # when the dashboard is served over HTTPS
    purger: Purger | None = None  # when retention runs on a schedule
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


def ctx() -> WebContext:
    """The WebContext (config, service, store, users, data_dir, errors) of this app."""
    return current_app.extensions["atopiscan"]


def store() -> Store:
    return ctx().store


def scans() -> ScanSession:
    """This app's ScanSession: the live preview, the captured frames, the recent scans."""
    return ctx().scans


def actor() -> Actor:
    """The logged-in user as the ``device.actions.Actor`` of a change."""
    from device.actions import Actor
    from device.web.auth import current_user

    user = current_user()
    return Actor(user.username, user.role)


def abort_store(exc: Exception) -> NoReturn:
    """A StoreError (or EasiError) as an HTTP error, by type: NotFound 404, else 400."""
    abort(http_status(exc), description=str(exc))


@contextmanager
def scan_aborts() -> Iterator[None]:
    """A scan's failures as HTTP errors: bad input by its type (device.core.errors), a camera
    or a model pack that cannot serve 503."""
    try:
        yield
    except ScanError as exc:
        abort(http_status(exc), description=str(exc))
    except CameraError as exc:
        abort(503, description=f"camera: {exc}")
    except ModelSetError as exc:
        abort(503, description=str(exc))
