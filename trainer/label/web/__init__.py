"""The studio's Flask app: login, the rater's page and JSON API, the adjudicator's page.
Sessions, the login limit and CSRF are the device dashboard's (trainer.label.web.auth).

``create_app(project)``; the database is reached through ``get_db()`` (trainer.label.web.db) (one connection per
request). Pages and API are thin: the work is in ``annotations`` and ``consensus``.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask, g
from flask_wtf.csrf import CSRFError

from device.web.csrf import init_csrf
from trainer.label.db import Project

log = logging.getLogger(__name__)

SECRET_FILE = "secret.key"


def load_secret(root: Path) -> bytes:
    """The session signing key, made once per project with mode 0600."""
    path = root / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def create_app(project: Project) -> Flask:
    from device.web.request_guards import install_request_guards
    from trainer.label.web import api, auth, pages

    app = Flask(__name__)
    install_request_guards(app)  # ids beyond SQLite: 404; JSON nested too deep: 400
    app.config.update(PROJECT=project, SECRET_KEY=load_secret(project.root),
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      MAX_CONTENT_LENGTH=1_000_000)
    project.cache.mkdir(exist_ok=True)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    auth.init_auth(app, project)  # the login check before the CSRF check: 401 before 400
    init_csrf(app)
    app.register_error_handler(CSRFError, auth.csrf_failed)

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            db.close()

    return app
