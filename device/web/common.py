"""Small helpers the route modules share: the app context, store errors as HTTP
errors, form number parsing."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from flask import abort, current_app

from device.errors import http_status

log = logging.getLogger(__name__)


def ctx() -> Any:
    """The WebContext (config, service, store, users, data_dir, errors) of this app."""
    return current_app.extensions["atopiscan"]


def store() -> Any:
    return ctx().store


def abort_store(exc: Exception) -> NoReturn:
    """A StoreError (or EasiError) as an HTTP error, by type: NotFound 404, else 400."""
    abort(http_status(exc), description=str(exc))


def form_float(value: Any, what: str, *, allow_empty: bool = True) -> float | None:
    """A number from a form field or JSON value; None for empty; 400 when not a number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if allow_empty:
            return None
        abort(400, description=f"{what}: required")
    if isinstance(value, bool):
        abort(400, description=f"{what}: {value!r} is not a number")
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        abort(400, description=f"{what}: {value!r} is not a number")
    if number != number or number in (float("inf"), float("-inf")):
        abort(400, description=f"{what}: {value!r} is not a number")
    return number


def form_int(value: Any, what: str) -> int | None:
    number = form_float(value, what)
    if number is None:
        return None
    if number != int(number):
        abort(400, description=f"{what}: {value!r} is not a whole number")
    return int(number)
