"""Small helpers the route modules share: the app context, store errors as HTTP
errors, form number parsing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from flask import abort, current_app

from device.cameras import CameraError
from device.core.errors import http_status
from device.grading.models import ModelSetError
from device.scan.pipeline import ScanError
from device.scan.session import ScanSession

log = logging.getLogger(__name__)


def ctx() -> Any:
    """The WebContext (config, service, store, users, data_dir, errors) of this app."""
    return current_app.extensions["atopiscan"]


def store() -> Any:
    return ctx().store


def scans() -> ScanSession:
    """This app's ScanSession: the live preview, the captured frames, the recent scans."""
    return ctx().scans


def actor() -> Any:
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
