"""Retention on a schedule: ``Store.purge_expired`` at start and then once a day, so
``storage.retention_days`` is kept; the last run is shown on the status page."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0


@dataclass(frozen=True)
class PurgeRecord:
    """One run of the purge: when, how many image files it deleted, or why it failed."""

    time: str
    retention_days: int
    deleted: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Purger:
    """Runs ``store.purge_expired`` now and every ``every_s`` seconds in a daemon thread."""

    def __init__(self, store: Any, *, every_s: float = DAY_S,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.every_s = every_s
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.last: PurgeRecord | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PurgeRecord:
        now = self.clock()
        try:
            deleted, error = self.store.purge_expired(now), None
        except (OSError, sqlite3.Error) as exc:  # a full or failing disk: try again tomorrow
            deleted, error = 0, str(exc)
            log.error("purge of images older than %d days failed: %s",
                      self.store.retention_days, exc)
        self.last = PurgeRecord(now.isoformat(timespec="seconds"), self.store.retention_days,
                                deleted, error)
        return self.last

    def start(self) -> None:
        """Purge now (in the thread, so a slow disk does not delay the start), then daily."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="purge", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self.run_once()
            if self._stop.wait(self.every_s):
                return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
