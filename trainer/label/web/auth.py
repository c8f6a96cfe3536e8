"""Login and logout; every other endpoint needs a logged-in user (checked before each
request, so a new route is closed by default).

The studio uses the device dashboard's own mechanisms (device.web), not copies:

- ``SessionStore``: the cookie names a server-side session id; logout ends it and a new
  password (``label adduser``) ends all of that user's, so a copied cookie dies too;
- ``LoginLimiter``: five wrong passwords per name and address, twenty per address, in
  five minutes, kept in the project database so a restart does not reset them;
- ``init_csrf`` (Flask-WTF): every POST and PUT, the login form included, carries the
  session's token as the ``csrf_token`` field or the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from device.web.limiter import LoginLimiter
from device.web.sessions import SessionStore
from trainer.label.db import Project
from trainer.label.models import Role
from trainer.label.users import User, authenticate, get_user
from trainer.label.web.db import get_db

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
PUBLIC = frozenset({"auth.login", "static"})
#: A login unused for this long ends (labelling sessions are long, but not unattended).
SESSION_IDLE_MINUTES = 120
_SESSIONS, _LIMITER = "studio.sessions", "studio.limiter"


def session_store(project: Project) -> SessionStore:
    """The project's live logins (a table in its database); the CLI ends a user's
    sessions through it when it sets a new password."""
    return SessionStore(project.db_path, max_idle_s=SESSION_IDLE_MINUTES * 60)


def init_auth(app: Any, project: Project) -> None:
    app.extensions[_SESSIONS] = session_store(project)
    app.extensions[_LIMITER] = LoginLimiter(project.db_path)
    app.before_request(require_login)


def _sessions() -> SessionStore:
    return current_app.extensions[_SESSIONS]


def require_login() -> Any:
    sid = session.get("sid")
    name = _sessions().user_of(sid) if isinstance(sid, str) else None
    if sid and name is None:
        session.clear()  # logged out, password changed or idle: the cookie is dead
    user = get_user(get_db(), name) if name else None
    g.user = user
    if request.endpoint in PUBLIC:
        return None
    if user is None:
        if request.path.startswith("/api/"):
            abort(401, "log in first")
        return redirect(url_for("auth.login", next=request.path))
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
    return {"user": g.get("user")}


def csrf_failed(exc: Any) -> Any:
    """Flask-WTF's CSRFError, in the studio's words (JSON for the API)."""
    message = f"missing or stale form token ({exc.description}): reload the page and try again"
    if request.path.startswith("/api/"):
        return jsonify(error=message), 400
    return message, 400, {"Content-Type": "text/plain; charset=utf-8"}


def home_for(user: User) -> str:
    return url_for("pages.adjudicate" if user.role is Role.ADJUDICATOR else "pages.label")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", error=None)
    limiter: LoginLimiter = current_app.extensions[_LIMITER]
    name = request.form.get("username", "").strip()
    addr = request.remote_addr or "?"
    wait = limiter.retry_after(name, addr)
    if wait > 0:
        log.warning("login for %r from %s refused: too many failed attempts", name, addr)
        return render_template("login.html", error="too many failed attempts: try again in "
                                                   f"{int(wait) + 1} seconds"), 429
    user = authenticate(get_db(), name, request.form.get("password", ""))
    if user is None:
        limiter.failed(name, addr)
        log.info("failed login for %r from %s", name, addr)
        return render_template("login.html", error="wrong name or password"), 401
    limiter.succeeded(name, addr)
    session.clear()
    session["sid"] = _sessions().create(user.name)
    nxt = request.args.get("next", "")
    return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else home_for(user))


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    sid = session.get("sid")
    if isinstance(sid, str):
        _sessions().revoke(sid)  # a copy of the cookie stops working too
    session.clear()
    return redirect(url_for("auth.login"))
