"""Login, roles, session expiry, the login rate limit and the secret key.

Every request needs a logged-in user except the few endpoints in
``PUBLIC_ENDPOINTS`` (``/healthz``, the login page and its stylesheet): the
check runs in ``before_request``, so a new route is closed by default.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
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

from device.web.users import Role, User, UserError, UserStore

log = logging.getLogger(__name__)

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


class LoginLimiter:
    """In-memory limit on failed logins per (username, client address).

    After ``max_failures`` failures within ``window_s`` seconds, further tries
    for that pair are refused until the oldest failure leaves the window.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> list[float]:
        now = self._clock()
        times = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def retry_after(self, username: str, addr: str) -> float:
        """Seconds until this pair may try again; 0 when it may try now."""
        key = (username.lower(), addr)
        with self._lock:
            times = self._recent(key)
            if len(times) < self.max_failures:
                return 0.0
            return max(0.0, self.window_s - (self._clock() - times[0]))

    def failed(self, username: str, addr: str) -> None:
        with self._lock:
            key = (username.lower(), addr)
            self._recent(key)
            self._failures.setdefault(key, []).append(self._clock())

    def succeeded(self, username: str, addr: str) -> None:
        with self._lock:
            self._failures.pop((username.lower(), addr), None)


def wants_json() -> bool:
    return request.path.startswith("/api/")


def current_user() -> User | None:
    return g.get("user")


def _login_redirect():
    target = request.full_path if request.method == "GET" else request.path
    return redirect(url_for("auth.login", next=target.rstrip("?")))


def check_login() -> Any:
    """before_request: load the user, expire idle sessions, refuse anonymous requests."""
    g.user = None
    users: UserStore = current_app.extensions["atopiscan.users"]
    name = session.get("user")
    if name:
        idle_limit = current_app.config["SESSION_MINUTES"] * 60
        seen = session.get("seen", 0)
        if time.time() - seen > idle_limit:
            session.clear()
            if request.endpoint not in PUBLIC_ENDPOINTS:
                if wants_json():
                    return jsonify(error="session expired: log in again"), 401
                flash("Your session expired. Please log in again.", "warning")
                return _login_redirect()
        else:
            g.user = users.get(name)
            if g.user is None:
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


def roles_required(*roles: Role) -> Callable:
    """Refuse (403) users whose role is not listed; admin always passes."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
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
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    users: UserStore = current_app.extensions["atopiscan.users"]
    limiter: LoginLimiter = current_app.extensions["atopiscan.limiter"]
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
    session.clear()
    session.permanent = True
    session["user"] = user.username
    session["seen"] = time.time()
    log.info("%s logged in from %s", user.username, addr)
    if user.must_change_password:
        return redirect(url_for("auth.change_password"))
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def change_password() -> Any:
    user = current_user()
    assert user is not None  # check_login ran
    if request.method == "GET":
        return render_template("password.html")
    users: UserStore = current_app.extensions["atopiscan.users"]
    current = request.form.get("current") or ""
    new = request.form.get("new") or ""
    if users.authenticate(user.username, current) is None:
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
    flash("Password changed.", "info")
    return redirect(url_for("index"))


def init_auth(app: Flask, users: UserStore, limiter: LoginLimiter | None = None) -> None:
    app.extensions["atopiscan.users"] = users
    app.extensions["atopiscan.limiter"] = limiter or LoginLimiter()
    app.before_request(check_login)
    app.register_blueprint(bp)

    @app.context_processor
    def _inject_user() -> dict[str, Any]:
        return {"user": current_user(), "Role": Role}
