"""Login and logout; every other endpoint needs a logged-in user (checked before each
request, so a new route is closed by default). POSTs carry the session's CSRF token, as a
form field or the ``X-CSRF-Token`` header."""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for

from trainer.label.models import Role
from trainer.label.users import User, authenticate, get_user
from trainer.label.web import get_db

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
PUBLIC = frozenset({"auth.login", "static"})


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def require_login() -> Any:
    if request.method not in ("GET", "HEAD") and request.endpoint != "auth.login":
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
        if not hmac.compare_digest(sent, session.get("csrf", "-")):
            abort(400, "missing or stale form token: reload the page and try again")
    if request.endpoint in PUBLIC:
        return None
    user = get_user(get_db(), session.get("user", "")) if session.get("user") else None
    if user is None:
        if request.path.startswith("/api/"):
            abort(401, "log in first")
        return redirect(url_for("auth.login", next=request.path))
    g.user = user
    return None


def role_required(role: Role) -> Callable:
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if g.user.role is not role:
                abort(403, f"this page is for the {role.value} role")
            return fn(*args, **kwargs)
        return inner
    return wrap


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "user": g.get("user")}


def home_for(user: User) -> str:
    return url_for("pages.adjudicate" if user.role is Role.ADJUDICATOR else "pages.label")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        name = request.form.get("username", "").strip()
        user = authenticate(get_db(), name, request.form.get("password", ""))
        if user is None:
            error = "wrong name or password"
            log.info("failed login for %r", name)
        else:
            session.clear()
            session["user"] = user.name
            nxt = request.args.get("next", "")
            return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//")
                            else home_for(user))
    return render_template("login.html", error=error), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
