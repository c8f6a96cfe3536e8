"""The dashboard: a Flask app served on the device by waitress, behind the TLS front for HTTPS
(device.web.serve, ``python -m device run``).

``create_app(config, service=..., store=...)`` builds the app around the device
service (camera, scanner, models) and the scan store; tests hand in their own.
Every page and API route needs a login (``auth.check_login`` runs before each
request) except ``/healthz``; every POST needs a CSRF token (Flask-WTF).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, Response, current_app, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import device
from device.core.errors import (
    AtopiscanError,
    StorageFull,
    StorageReadOnly,
    http_status,
    storage_error,
)
from device.scan.session import ScanSession
from device.web import errorlog
from device.web.auth import LoginLimiter, current_user, init_auth, load_secret_key, wants_json
from device.web.csrf import init_csrf
from device.web.request_guards import install_request_guards
from device.web.users import Role, UserStore

if TYPE_CHECKING:  # the service and the store import cv2 and the scan pipeline
    from device.config import DeviceConfig
    from device.scan.service import Service
    from device.store import Store
    from device.store.purger import Purger
    from device.web.tls import TlsSetup

log = logging.getLogger(__name__)

#: Pack uploads may be larger than photos (three models); this caps them.
MAX_PACK_MB = 512
#: How long a browser keeps to HTTPS after seeing the dashboard over it (one year).
HSTS_MAX_AGE_S = 365 * 24 * 3600


def _default_service(config: DeviceConfig) -> Service:
    from device.scan.service import Service

    return Service.from_config(config)


def default_store(config: DeviceConfig, data_dir: Path) -> Store:
    from device.store import Store
    from device.vision.faces import blur_faces

    return Store(data_dir, keep_images=config.storage.keep_images,
                 retention_days=config.storage.retention_days,
                 keep_frames=config.storage.keep_frames,
                 redact_frame=blur_faces if config.storage.blur_faces else None)


def create_app(config: DeviceConfig, *, service: Service | None = None, store: Store | None = None,
               users: UserStore | None = None, data_dir: Path | None = None,
               limiter: LoginLimiter | None = None, testing: bool = False,
               tls: TlsSetup | None = None, purger: Purger | None = None,
               scans: ScanSession | None = None) -> Flask:
    """Build the dashboard. ``config`` is a DeviceConfig; ``data_dir`` overrides
    ``config.storage.data_dir`` (the secret key and users live there). ``tls`` (a
    device.web.tls.TlsSetup) says it is served over HTTPS: Secure cookies and HSTS.
    ``scans`` (a device.scan.session.ScanSession) holds the preview and the recent scans;
    by default one around the service's camera."""
    data_dir = Path(data_dir or config.storage.data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__)
    install_request_guards(app)  # ids beyond SQLite: 404; JSON nested too deep: 400
    app.config.update(
        SECRET_KEY=load_secret_key(data_dir),
        SESSION_COOKIE_NAME="atopiscan_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=tls is not None,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=config.web.session_minutes),
        SESSION_MINUTES=config.web.session_minutes,
        MAX_CONTENT_LENGTH=int(config.web.max_upload_mb * 1024 * 1024),
        MAX_UPLOAD_MB=config.web.max_upload_mb,
        TESTING=testing,
    )
    users = users or UserStore.in_data_dir(data_dir)
    if store is None:
        store = default_store(config, data_dir)
    if service is None:
        service = _default_service(config)
    if scans is None:
        scans = ScanSession(config, service.camera)

    from device.web.common import WebContext

    app.extensions["atopiscan"] = WebContext(
        config=config, service=service, store=store, users=users, data_dir=data_dir,
        errors=errorlog.install(), scans=scans, tls=tls, purger=purger,
    )

    # Registered before CSRFProtect, whose check reads (and so size-checks) the body.
    app.before_request(_pack_upload_limit)
    init_auth(app, users, limiter)  # login check before the CSRF check: 401 before 400
    init_csrf(app)
    _register(app)
    _error_handlers(app)

    @app.context_processor
    def _globals() -> dict[str, object]:
        return {"device_name": config.device_name, "software_version": device.__version__,
                "this_year": dt.date.today().year}

    _security_headers(app, https=tls is not None)
    return app


def _pack_upload_limit() -> None:
    # Packs hold three models: let their two upload endpoints take more than a photo.
    if request.endpoint in ("models.upload", "api.packs") and request.method == "POST":
        request.max_content_length = MAX_PACK_MB * 1024 * 1024


def _security_headers(app: Flask, *, https: bool) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'",
        )
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        if https:  # browsers that saw HTTPS once never fall back to plain HTTP
            response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE_S}")
        return response


def _register(app: Flask) -> None:
    from device.web import (
        account,
        api,
        dataexport,
        lesions,
        packs,
        recrop,
        scan,
        status,
        stream,
        visits,
    )

    for module in (status, scan, stream, recrop, visits, lesions, packs, api, dataexport,
                   account):
        app.register_blueprint(module.bp)

    @app.route("/")
    def index() -> ResponseReturnValue:
        user = current_user()
        if user is not None and user.role is Role.TECHNICIAN:
            return redirect(url_for("status.status_page"))
        return redirect(url_for("scan.scan_page"))


_TITLES = {400: "Bad request", 401: "Log in first", 403: "Not allowed", 404: "Not found",
           405: "Method not allowed", 413: "Upload too large", 415: "Unsupported file",
           429: "Too many attempts", 503: "Not available now", 507: "Disk full"}


def _data_dir() -> Path | None:
    context = current_app.extensions.get("atopiscan")
    return context.data_dir if context is not None else None


def _error_handlers(app: Flask) -> None:
    def reply(code: int, message: str) -> ResponseReturnValue:
        if wants_json():
            return jsonify(error=message), code
        return render_template("error.html", code=code, title=_TITLES.get(code, "Error"),
                               message=message), code

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> ResponseReturnValue:
        return reply(400, f"CSRF check failed: {exc.description} Reload the page and try again; "
                          "API clients send the X-CSRFToken header from /api/csrf.")

    @app.errorhandler(413)
    def _too_large(exc: HTTPException) -> ResponseReturnValue:
        if exc.description != RequestEntityTooLarge.description:  # our own reason, e.g. pixels
            return reply(413, exc.description)
        limit = request.max_content_length or app.config["MAX_CONTENT_LENGTH"]
        return reply(413, f"the upload is larger than {limit / 1024 / 1024:g} MB")

    @app.errorhandler(AtopiscanError)
    def _typed(exc: AtopiscanError) -> ResponseReturnValue:  # decided by type: NotFound 404, InvalidInput 400...
        return reply(http_status(exc), str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        return reply(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(sqlite3.Error)
    @app.errorhandler(OSError)
    def _storage(exc: Exception) -> ResponseReturnValue:
        """A full or read-only data disk, met anywhere (a save, a login, a review): say so
        (507 / 503) instead of a bare 500. Transactions rolled back: nothing half-saved."""
        typed = storage_error(exc, "the device could not save", _data_dir())
        if not isinstance(typed, (StorageFull, StorageReadOnly)):
            raise exc
        log.error("%s %s: %s", request.method, request.path, typed)
        return reply(http_status(typed), str(typed))
