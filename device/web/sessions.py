"""Server-side record of logins, so that a session can be ended for good.

The signed cookie alone cannot be revoked: a copy taken before logout would keep
working. So the cookie carries a random session id, and this table (in the users
database) says which ids are live. Logout deletes the id; a password change
deletes every id of that user (other browsers are logged out, the one that
changed the password gets a new id). A login ends the session the browser had
before it, and the account page lists a user's sessions (by a public handle, a hash
of the id: the id itself never leaves the cookie) with a button to end each. Ids idle
for longer than the session lifetime are dropped as well.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.core.errors import storage_guard

log = logging.getLogger(__name__)

#: ``seen`` is written at most this often per session (not on every request).
TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class SessionInfo:
    """One live session as its user sees it on the account page."""

    handle: str  # public name of the session: handle_of(its id)
    created: float
    seen: float
    addr: str  # the address it logged in from


def handle_of(sid: str) -> str:
    """The public name of session ``sid`` (shown and posted back; not usable as a cookie)."""
    return hashlib.sha256(sid.encode()).hexdigest()[:16]


class SessionStore:
    def __init__(self, path: Path | None, *, max_idle_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        """``path`` None keeps the table in memory (tests)."""
        self.max_idle_s = max_idle_s
        self._clock = clock
        self._lock = threading.Lock()
        folder = None if path is None else Path(path).parent
        with storage_guard("opening the sessions table", folder):
            self._db = sqlite3.connect(":memory:" if path is None else str(path), timeout=10,
                                       check_same_thread=False, isolation_level=None)
            self._db.execute("CREATE TABLE IF NOT EXISTS sessions ("
                             " id TEXT PRIMARY KEY, username TEXT NOT NULL,"
                             " created REAL NOT NULL, seen REAL NOT NULL)")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}
            if "addr" not in columns:  # tables made before the account page listed sessions
                self._db.execute("ALTER TABLE sessions ADD COLUMN addr TEXT NOT NULL DEFAULT ''")

    def create(self, username: str, addr: str = "") -> str:
        """A new live session id for ``username`` (and drop ids idle too long)."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE seen < ?", (now - self.max_idle_s,))
            self._db.execute("INSERT INTO sessions (id, username, created, seen, addr) "
                             "VALUES (?, ?, ?, ?, ?)", (sid, username, now, now, addr))
        return sid

    def sessions_of(self, username: str) -> list[SessionInfo]:
        """The live sessions of ``username``, newest first."""
        cutoff = self._clock() - self.max_idle_s
        with self._lock:
            rows = self._db.execute("SELECT id, created, seen, addr FROM sessions WHERE "
                                    "username = ? AND seen >= ? ORDER BY created DESC",
                                    (username, cutoff)).fetchall()
        return [SessionInfo(handle_of(sid), created, seen, addr) for sid, created, seen, addr in rows]

    def revoke_handle(self, username: str, handle: str) -> bool:
        """End the session of ``username`` named ``handle``; whether there was one."""
        with self._lock:
            ids = [sid for (sid,) in self._db.execute(
                "SELECT id FROM sessions WHERE username = ?", (username,))
                if secrets.compare_digest(handle_of(sid), handle)]
            for sid in ids:
                self._db.execute("DELETE FROM sessions WHERE id = ?", (sid,))
        return bool(ids)

    def user_of(self, sid: str) -> str | None:
        """The user of a live session id, or None (unknown, revoked or idle too long)."""
        now = self._clock()
        with self._lock:
            row = self._db.execute("SELECT username, seen FROM sessions WHERE id = ?",
                                   (sid,)).fetchone()
            if row is None:
                return None
            username, seen = row
            if now - seen > self.max_idle_s:
                self._db.execute("DELETE FROM sessions WHERE id = ?", (sid,))
                return None
            if now - seen > TOUCH_EVERY_S:
                try:
                    self._db.execute("UPDATE sessions SET seen = ? WHERE id = ?", (now, sid))
                except sqlite3.OperationalError as exc:  # a full or read-only disk: the
                    log.warning("session activity not recorded: %s", exc)  # pages still read
        return str(username)

    def revoke(self, sid: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (sid,))

    def revoke_user(self, username: str) -> int:
        """End every session of ``username``; returns how many there were."""
        with self._lock:
            cur = self._db.execute("DELETE FROM sessions WHERE username = ?", (username,))
        if cur.rowcount:
            log.info("ended %d session(s) of %s", cur.rowcount, username)
        return cur.rowcount

    def count(self, username: str | None = None) -> int:
        with self._lock:
            if username is None:
                return int(self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM sessions WHERE username = ?",
                                        (username,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
