"""Login, roles, session expiry and revocation, the login rate limit and the secret key.

Every request needs a logged-in user except the few endpoints in
``PUBLIC_ENDPOINTS`` (``/healthz``, the login page and its stylesheet): the
check runs in ``before_request``, so a new route is closed by default.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from device.web.limiter import LoginLimiter
from device.web.sessions import SessionStore
from device.web.users import Role, User, UserError, UserStore

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["LoginLimiter", "PUBLIC_ENDPOINTS", "SessionStore", "check_login", "current_user",
           "init_auth", "load_secret_key", "roles_required", "wants_json"]

SECRET_FILE = "web_secret_key"
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static", "status.healthz"})
#: Endpoints a user who must change the one-time password may still reach.
CHANGE_ENDPOINTS = frozenset({"auth.change_password", "auth.logout", "static", "api.csrf"})

bp = Blueprint("auth", __name__)


def load_secret_key(data_dir: Path) -> bytes:
    """The session signing key: generated once, kept in the data dir with mode 0600."""
    path = Path(data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < 32:
            raise RuntimeError(
                f"{path}: secret key is too short ({len(key)} bytes); delete the file to make a new "
                "one (everyone will have to log in again)"
            ) from None
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("%s was readable by others; set its mode to 0600", path)
        return key
    with os.fdopen(fd, "wb") as fh:
        key = secrets.token_bytes(32)
        fh.write(key)
    log.info("generated a new dashboard secret key in %s", path)
    return key


def wants_json() -> bool:
    return request.path.startswith("/api/")


def current_user() -> User | None:
    return g.get("user")


def _sessions() -> SessionStore:
    return current_app.extensions["atopiscan.sessions"]


def _limiter() -> LoginLimiter:
    return current_app.extensions["atopiscan.limiter"]


def _start_session(username: str) -> None:
    old = session.get("sid")
    if isinstance(old, str):  # the session this browser had ends: a copy of it dies too
        _sessions().revoke(old)
    session.clear()
    session.permanent = True
    session["sid"] = _sessions().create(username, addr=request.remote_addr or "")
    session["seen"] = time.time()


def _login_redirect() -> Response:
    target = request.full_path if request.method == "GET" else request.path
    return redirect(url_for("auth.login", next=target.rstrip("?")))


def check_login() -> ResponseReturnValue | None:
    """before_request: load the user, expire idle sessions, refuse anonymous requests."""
    g.user = None
    users: UserStore = current_app.extensions["atopiscan.users"]
    sid = session.get("sid")
    # The cookie names a session id; only a live one (not logged out, not ended by a
    # password change) counts, so a copied cookie dies with the session.
    name = _sessions().user_of(sid) if isinstance(sid, str) else None
    if sid and name is None:
        session.clear()
    if name:
        idle_limit = current_app.config["SESSION_MINUTES"] * 60
        seen = session.get("seen", 0)
        if time.time() - seen > idle_limit:
            _sessions().revoke(sid)
            session.clear()
            if request.endpoint not in PUBLIC_ENDPOINTS:
                if wants_json():
                    return jsonify(error="session expired: log in again"), 401
                flash("Your session expired. Please log in again.", "warning")
                return _login_redirect()
        else:
            g.user = users.get(name)
            if g.user is None:
                _sessions().revoke(sid)
                session.clear()
            else:
                session["seen"] = time.time()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if g.user is None:
        if wants_json():
            return jsonify(error="login required"), 401
        return _login_redirect()
    if g.user.must_change_password and request.endpoint not in CHANGE_ENDPOINTS:
        if wants_json():
            return jsonify(error="change the one-time password first (/account/password)"), 403
        return redirect(url_for("auth.change_password"))
    return None


def roles_required(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse (403) users whose role is not listed; admin always passes."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            user = current_user()
            if user is None:
                abort(401)
            if not user.has_role(*roles):
                names = " or ".join(r.value for r in roles)
                abort(403, description=f"this page needs the {names} role")
            return view(*args, **kwargs)

        wrapper.roles = roles  # type: ignore[attr-defined]
        return wrapper

    return decorator


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never redirect off the device after login."""
    if not target:
        return url_for("index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    users: UserStore = current_app.extensions["atopiscan.users"]
    limiter = _limiter()
    username = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    addr = request.remote_addr or "?"
    wait = limiter.retry_after(username, addr)
    if wait > 0:
        log.warning("login for %r from %s refused: too many failed attempts", username, addr)
        flash(f"Too many failed attempts. Try again in {int(wait) + 1} seconds.", "error")
        return render_template("login.html", next=request.form.get("next", "")), 429
    user = users.authenticate(username, password) if username else None
    if user is None:
        limiter.failed(username, addr)
        log.info("failed login for %r from %s", username, addr)
        flash("Wrong user name or password.", "error")
        return render_template("login.html", next=request.form.get("next", "")), 401
    limiter.succeeded(username, addr)
    _start_session(user.username)
    log.info("%s logged in from %s", user.username, addr)
    if user.must_change_password:
        return redirect(url_for("auth.change_password"))
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    sid = session.get("sid")
    if isinstance(sid, str):
        _sessions().revoke(sid)  # a copy of the cookie stops working too
    session.clear()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def change_password() -> ResponseReturnValue:
    user = current_user()
    assert user is not None  # check_login ran
    if request.method == "GET":
        return render_template("password.html")
    users: UserStore = current_app.extensions["atopiscan.users"]
    current = request.form.get("current") or ""
    new = request.form.get("new") or ""
    addr = request.remote_addr or "?"
    wait = _limiter().retry_after(user.username, addr)
    if wait > 0:  # guesses at the current password count as failed logins
        log.warning("password change for %r from %s refused: too many failed attempts",
                    user.username, addr)
        flash(f"Too many wrong passwords. Try again in {int(wait) + 1} seconds.", "error")
        return render_template("password.html"), 429
    if users.authenticate(user.username, current) is None:
        _limiter().failed(user.username, addr)
        log.info("wrong current password for %r from %s", user.username, addr)
        flash("The current password is wrong.", "error")
        return render_template("password.html"), 400
    if new != request.form.get("confirm"):
        flash("The two new passwords differ.", "error")
        return render_template("password.html"), 400
    if new == current:
        flash("Choose a new password that differs from the current one.", "error")
        return render_template("password.html"), 400
    try:
        users.set_password(user.username, new)
    except UserError as exc:
        flash(str(exc).capitalize() + ".", "error")
        return render_template("password.html"), 400
    # End every session of this user (a cookie copied earlier, other browsers);
    # this browser carries on with a new session id.
    _sessions().revoke_user(user.username)
    _start_session(user.username)
    flash("Password changed. Other sessions of this account were logged out.", "info")
    return redirect(url_for("index"))


def init_auth(app: Flask, users: UserStore, limiter: LoginLimiter | None = None,
              sessions: SessionStore | None = None) -> None:
    """Login for every request. The limiter and the sessions default to tables in the
    users database, so neither a restart nor a copied cookie gets round them."""
    app.extensions["atopiscan.users"] = users
    app.extensions["atopiscan.limiter"] = limiter or LoginLimiter(users.path)
    app.extensions["atopiscan.sessions"] = sessions or SessionStore(
        users.path, max_idle_s=app.config["SESSION_MINUTES"] * 60)
    app.before_request(check_login)
    app.register_blueprint(bp)

    @app.context_processor
    def _inject_user() -> dict[str, object]:
        return {"user": current_user(), "Role": Role}
