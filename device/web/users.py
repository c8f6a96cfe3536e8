"""Dashboard users: a small SQLite table of names, password hashes and roles.

Passwords are hashed with werkzeug.security (scrypt/pbkdf2 with a salt); the
plain text is never stored. The table lives in its own file in the data
directory (``users.sqlite``) so the scan store's schema stays the scan store's.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from device.core.errors import storage_guard
from device.core.vocab import Role  # one home: the actions record it too

log = logging.getLogger(__name__)

USERS_FILE = "users.sqlite"
MIN_PASSWORD_LENGTH = 8
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


ROLES: tuple[Role, ...] = tuple(Role)


def parse_role(text: str) -> Role:
    key = str(text).strip().lower()
    for role in ROLES:
        if role.value == key:
            return role
    raise ValueError(f"unknown role {text!r}: expected one of {', '.join(r.value for r in ROLES)}")


class UserError(ValueError):
    """A user could not be added or changed; the message says why."""


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    created: str
    must_change_password: bool = False

    def has_role(self, *roles: Role) -> bool:
        return self.role is Role.ADMIN or self.role in roles


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")


class UserStore:
    """The users table. Thread-safe: one connection per call, WAL journal."""

    def __init__(self, path: Path, *, hash_method: str | None = None) -> None:
        """``hash_method``: a werkzeug method string; None is werkzeug's default (scrypt).
        Tests pass a cheap one so that each login does not cost a third of a second."""
        self.path = Path(path)
        self._method = {"method": hash_method} if hash_method else {}
        self._lock = threading.Lock()
        # A read-only or full data folder is one clear StorageReadOnly/StorageFull.
        with storage_guard("opening the users database", self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS users ("
                    " username TEXT PRIMARY KEY,"
                    " password_hash TEXT NOT NULL,"
                    " role TEXT NOT NULL CHECK (role IN ('staff', 'technician', 'admin')),"
                    " created TEXT NOT NULL,"
                    " must_change_password INTEGER NOT NULL DEFAULT 0)"
                )
            # Password hashes: readable by the service's user only (WAL/SHM copy this mode).
            os.chmod(self.path, 0o600)

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, hash_method: str | None = None) -> UserStore:
        return cls(Path(data_dir) / USERS_FILE, hash_method=hash_method)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        return User(row["username"], Role(row["role"]), row["created"],
                    bool(row["must_change_password"]))

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def list(self) -> list[User]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM users ORDER BY username").fetchall()
        return [self._user(r) for r in rows]

    def get(self, username: str) -> User | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return self._user(row) if row else None

    def add(self, username: str, password: str, role: Role | str, *,
            must_change_password: bool = False) -> User:
        if not _NAME_RE.match(username or ""):
            raise UserError(
                f"invalid user name {username!r}: use 1-64 letters, digits, '.', '_' or '-'"
            )
        role = parse_role(role) if not isinstance(role, Role) else role
        check_password_strength(password)
        user = User(username, role, _now(), must_change_password)
        with (self._lock, storage_guard("adding the user", self.path.parent),
              self._connect() as db):
            try:
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                    (username, generate_password_hash(password, **self._method), role.value, user.created,
                     int(must_change_password)),
                )
            except sqlite3.IntegrityError as exc:
                raise UserError(f"user {username!r} already exists") from exc
        log.info("added user %s (%s)", username, role.value)
        return user

    def set_password(self, username: str, password: str) -> None:
        check_password_strength(password)
        with (self._lock, storage_guard("changing the password", self.path.parent),
              self._connect() as db):
            cur = db.execute(
                "UPDATE users SET password_hash = ?, must_change_password = 0 WHERE username = ?",
                (generate_password_hash(password, **self._method), username),
            )
            if cur.rowcount == 0:
                raise UserError(f"no user {username!r}")
        log.info("password changed for %s", username)

    def delete(self, username: str) -> None:
        with self._lock, self._connect() as db:
            db.execute("DELETE FROM users WHERE username = ?", (username,))

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches, else None (same work either way)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            # Hash anyway so a missing name takes as long as a wrong password.
            check_password_hash(_dummy_hash(**self._method), password)
            return None
        if not check_password_hash(row["password_hash"], password):
            return None
        return self._user(row)

    def ensure_setup_user(self, username: str = "admin") -> str | None:
        """On a first start with no users: create an admin with a random one-time
        password and return it (to print on the console). None when users exist."""
        if self.count():
            return None
        password = secrets.token_urlsafe(12)
        self.add(username, password, Role.ADMIN, must_change_password=True)
        return password


@functools.cache
def _dummy_hash(**method: str) -> str:
    return generate_password_hash(secrets.token_hex(8), **method)
