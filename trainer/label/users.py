"""Studio users: raters and adjudicators, with salted password hashes (werkzeug)."""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from trainer.label.db import transaction
from trainer.label.models import LabelError, NotFoundError, Role
from trainer.label.photos import now

log = logging.getLogger(__name__)

MIN_PASSWORD = 8
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class User:
    name: str
    role: Role


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise LabelError(f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def add_user(db: sqlite3.Connection, name: str, password: str, role: Role, *,
             hash_method: str | None = None) -> User:
    check_name(name)
    if len(password) < MIN_PASSWORD:
        raise LabelError(f"password too short: use at least {MIN_PASSWORD} characters")
    method = {"method": hash_method} if hash_method else {}
    with transaction(db):
        if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise LabelError(f"user {name!r} already exists")
        db.execute("INSERT INTO users VALUES (?, ?, ?, ?)",
                   (name, generate_password_hash(password, **method), role.value, now()))
    log.info("added %s %s", role.value, name)
    return User(name, role)


def ensure_rater(db: sqlite3.Connection, name: str) -> None:
    """Create a rater named in imported labels (no password: cannot log in until one is set
    with ``label adduser``). Call inside a transaction."""
    check_name(name)
    db.execute("INSERT OR IGNORE INTO users VALUES (?, '', 'rater', ?)", (name, now()))


def set_password(db: sqlite3.Connection, name: str, password: str, role: Role, *,
                 hash_method: str | None = None) -> User:
    """Give an existing user (e.g. one created by an import) a password and role."""
    if len(password) < MIN_PASSWORD:
        raise LabelError(f"password too short: use at least {MIN_PASSWORD} characters")
    method = {"method": hash_method} if hash_method else {}
    with transaction(db):
        cur = db.execute("UPDATE users SET password_hash = ?, role = ? WHERE name = ?",
                         (generate_password_hash(password, **method), role.value, name))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}")
    return User(name, role)


def get_user(db: sqlite3.Connection, name: str) -> User | None:
    row = db.execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
    return User(row["name"], Role(row["role"])) if row else None


def authenticate(db: sqlite3.Connection, name: str, password: str) -> User | None:
    row = db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
    if row is None or not row["password_hash"]:
        check_password_hash(generate_password_hash("x" * 8, method="pbkdf2:sha256:1000"),
                            password)
        return None
    if not check_password_hash(row["password_hash"], password):
        return None
    return User(row["name"], Role(row["role"]))


def list_users(db: sqlite3.Connection) -> list[User]:
    return [User(r["name"], Role(r["role"]))
            for r in db.execute("SELECT name, role FROM users ORDER BY name")]
