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
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


class _StorageFailure(AtopiscanError, OSError):
    def __str__(self) -> str:  # the message a person reads, without "[Errno 28] "
        return self.strerror or super().__str__()


class StorageFull(_StorageFailure):
    """The data disk is full: nothing was written. 507."""


class StorageReadOnly(_StorageFailure):
    """The data disk is read-only (often a failing SD card): nothing was written. 503."""


#: SQLite's primary result codes for a full disk, a read-only database, a file that
#: cannot be opened (often a folder that cannot be written) and an I/O error.
_SQLITE_FULL, _SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_IOERR = 13, 8, 14, 10


def _kind(exc: BaseException, folder: Path | None) -> int | None:
    """ENOSPC, EROFS or EACCES for a full, read-only or unwritable data folder, else None."""
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # Python >= 3.11
        if code == _SQLITE_FULL:
            return errno.ENOSPC
        if code == _SQLITE_READONLY:
            return errno.EROFS
        if (code in (_SQLITE_CANTOPEN, _SQLITE_IOERR) and folder is not None
                and not os.access(folder, os.W_OK)):  # False on a read-only mount, even for root
            return errno.EROFS
        return None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return errno.ENOSPC
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return errno.EROFS
    return None


def storage_error(exc: BaseException, what: str, folder: Path | None = None) -> BaseException:
    """``exc`` (an OSError, or a SQLite error by its result code) as ``StorageFull`` or
    ``StorageReadOnly`` when it is one of those, else ``exc`` as it is. ``folder`` is
    the data folder, named in the message and probed when SQLite's code is ambiguous."""
    if isinstance(exc, AtopiscanError):
        return exc  # already typed (an inner guard)
    kind, where = _kind(exc, folder), f" ({folder})" if folder is not None else ""
    if kind == errno.ENOSPC:
        return StorageFull(errno.ENOSPC, (
            f"{what}: the device's disk is full{where}, so nothing was saved; what was saved "
            "before is safe. Free space (export and delete old scans, remove old packs) and "
            "try again"))
    if kind == errno.EROFS:
        return StorageReadOnly(errno.EROFS, (
            f"{what}: the data folder{where} cannot be written (a read-only disk, often a "
            "failing SD card, or wrong permissions), so nothing was saved; check the card "
            "and that the folder belongs to the service's user"))
    return exc


@contextmanager
def storage_guard(what: str, folder: Path | None = None) -> Iterator[None]:
    """Re-raise a full or read-only disk met inside the block as StorageFull or
    StorageReadOnly (see ``storage_error``); other errors pass unchanged."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        typed = storage_error(exc, what, folder)
        if typed is exc:
            raise
        raise typed from exc


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
