"""The failed-login limit, kept in SQLite beside the users so that a restart does not
reset it.

Two counts within ``window_s`` seconds, both checked before each try:

- per user name and client address (``max_failures``): five wrong passwords for
  one account lock that account from that address;
- per client address over all user names (``max_per_address``): spreading the
  guesses over many user names does not get round the first count.

A wrong current password on the change-password form counts as a failed login
of that user: it is the same guess by other means.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from device.core.errors import storage_guard

log = logging.getLogger(__name__)

MAX_FAILURES = 5
MAX_PER_ADDRESS = 20
WINDOW_S = 300.0


class LoginLimiter:
    """Failed logins per (user name, address) and per address, in a SQLite table.

    ``path`` None keeps the table in memory (tests); the dashboard passes the
    users database (``users.sqlite`` in the data folder)."""

    def __init__(self, path: Path | None = None, *, max_failures: int = MAX_FAILURES,
                 max_per_address: int = MAX_PER_ADDRESS, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_failures = max_failures
        self.max_per_address = max_per_address
        self.window_s = window_s
        self._clock = clock  # wall time: the rows outlive the process
        self._lock = threading.Lock()
        # One connection shared by the server's threads, serialised by the lock.
        folder = None if path is None else Path(path).parent
        with storage_guard("opening the login-limit table", folder):
            self._db = sqlite3.connect(":memory:" if path is None else str(path), timeout=10,
                                       check_same_thread=False, isolation_level=None)
            self._db.execute("CREATE TABLE IF NOT EXISTS login_failures ("
                             " username TEXT NOT NULL, addr TEXT NOT NULL, at REAL NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS login_failures_addr "
                             "ON login_failures (addr, at)")

    def _times(self, where: str, args: tuple[str, ...]) -> list[float]:
        rows = self._db.execute(f"SELECT at FROM login_failures WHERE {where} ORDER BY at", args)
        return [float(r[0]) for r in rows]

    def _wait(self, times: list[float], limit: int, now: float) -> float:
        """Seconds until fewer than ``limit`` of ``times`` are inside the window."""
        if len(times) < limit:
            return 0.0
        leaving = times[len(times) - limit]  # once this one leaves, one more try is allowed
        return max(0.0, self.window_s - (now - leaving))

    def retry_after(self, username: str, addr: str) -> float:
        """Seconds until this user name may try again from this address; 0 when now."""
        now = self._clock()
        with self._lock:
            self._db.execute("DELETE FROM login_failures WHERE at <= ?", (now - self.window_s,))
            pair = self._times("username = ? AND addr = ?", (username.lower(), addr))
            per_addr = self._times("addr = ?", (addr,))
        return max(self._wait(pair, self.max_failures, now),
                   self._wait(per_addr, self.max_per_address, now))

    def failed(self, username: str, addr: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO login_failures VALUES (?, ?, ?)",
                             (username.lower(), addr, self._clock()))

    def succeeded(self, username: str, addr: str) -> None:
        """A right password clears that account's count from that address; the
        address's count over all names stays until its failures age out."""
        with self._lock:
            self._db.execute("DELETE FROM login_failures WHERE username = ? AND addr = ?",
                             (username.lower(), addr))

    def close(self) -> None:
        with self._lock:
            self._db.close()
