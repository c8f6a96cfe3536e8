"""Guards against hostile request values, shared by the dashboard (device.web) and the
labelling studio (trainer.label.web): one place, installed by each ``create_app``. A
shared contract: it imports Flask and nothing of the dashboard.

- ``<int:...>`` in a route matches only ids SQLite can hold (below 2^63): a larger id
  in a URL is a 404 like any unknown id, not an ``OverflowError`` and a 500.
- A number too large for SQLite met elsewhere (a form field, a query argument)
  answers 400.
- JSON nested too deeply for the parser is refused like any malformed JSON:
  ``request.get_json(silent=True)`` gives None and ``get_json()`` answers 400 (the
  standard parser raises ``RecursionError``, which Flask does not catch).
"""

from __future__ import annotations

import builtins
from typing import Any

from flask import Flask, current_app
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map

#: The largest row id SQLite stores (a signed 64-bit integer).
MAX_ROW_ID = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """Werkzeug's ``int`` converter, never matching a value above ``MAX_ROW_ID``."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = None, signed: bool = False) -> None:  # noqa: A002
        bound = MAX_ROW_ID if max is None else builtins.min(max, MAX_ROW_ID)
        super().__init__(map, fixed_digits, min, bound, signed)


class DepthLimitedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider; a document nested too deeply is a ValueError (bad JSON)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None


def _too_large(exc: OverflowError) -> ResponseReturnValue:
    return current_app.handle_http_exception(BadRequest(
        description="a number in the request is too large (ids and counts are below 2^63)"))


def install_request_guards(app: Flask) -> None:
    """Install the guards on ``app``: call before any blueprint or route is registered
    (a rule keeps the converter it was compiled with)."""
    app.url_map.converters["int"] = RowIdConverter
    app.json = DepthLimitedJSONProvider(app)
    app.register_error_handler(OverflowError, _too_large)
