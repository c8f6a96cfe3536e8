"""The kinds of failure a person can act on, as types.

Callers decide by type, never by reading an error's words: the web maps these
to HTTP statuses and the CLIs to exit codes (see ``http_status``). A module's own
error (``StoreError``, ``ScanError``, ``ImageError``) subclasses one of these, and
a specific case adds a second base, e.g. ``class RecordNotFoundError(StoreError,
NotFound)``, so ``except StoreError`` still catches it.
"""

from __future__ import annotations

import errno
import logging
from typing import Any, NamedTuple

log = logging.getLogger(__name__)


class AtopiscanError(Exception):
    """Base of the typed failures; ``str(exc)`` says what was wrong and what to do."""


class InvalidInput(AtopiscanError, ValueError):
    """Bad input (a form field, a file, an argument): 400, CLI exit code 2."""


class NotFound(AtopiscanError, LookupError):
    """The thing asked for does not exist (patient, visit, scan, file): 404."""


class Conflict(AtopiscanError):
    """The request clashes with the current state (already exists, closed): 409."""


class NoPackInstalled(AtopiscanError):
    """No model pack is installed, so nothing can be graded: 503."""


class StorageFull(AtopiscanError, OSError):
    """The data disk is full: nothing was written. 507."""


class StorageReadOnly(AtopiscanError, OSError):
    """The data disk is read-only (often a failing SD card): nothing was written. 503."""


def storage_error(exc: OSError, what: str) -> OSError:
    """``exc`` as ``StorageFull``/``StorageReadOnly`` when it is one of those, else as is."""
    if exc.errno == errno.ENOSPC:
        return StorageFull(errno.ENOSPC, f"{what}: the disk is full; free space and try again")
    if exc.errno == errno.EROFS:
        return StorageReadOnly(errno.EROFS, f"{what}: the disk is read-only; check the SD card")
    return exc


#: HTTP status per failure type, most specific first (the first isinstance match wins).
_HTTP_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (NoPackInstalled, 503),
    (StorageFull, 507),
    (StorageReadOnly, 503),
)


def http_status(exc: BaseException, default: int = 400) -> int:
    """The HTTP status to answer ``exc`` with; ``default`` for other input errors."""
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return status
    for kind, code in _HTTP_STATUS:
        if isinstance(exc, kind):
            return code
    return default


class Problem(NamedTuple):
    """One field a pydantic model refused: where (``loc``) and why, readable."""

    loc: tuple[Any, ...]
    message: str

    @property
    def field(self) -> str:
        return ".".join(str(p) for p in self.loc) or "<top>"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def validation_problems(exc: Any, *, unknown_key: str | None = None) -> list[Problem]:
    """The one formatter of a pydantic ``ValidationError``: a ``Problem`` per refused field.

    ``unknown_key`` replaces pydantic's "Extra inputs are not permitted" (e.g. with where
    the known keys are listed)."""
    problems = []
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and unknown_key:
            message = unknown_key
        problems.append(Problem(tuple(err["loc"]), message))
    return problems
