"""The studio's database for the request: one connection per request (``get_db()``),
closed by the app's teardown (trainer.label.web.create_app). Its own module so that
the pages, API and sign-in import it without importing the app package."""

from __future__ import annotations

import sqlite3

from flask import current_app, g

from trainer.label.db import connect


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = connect(current_app.config["PROJECT"])
    return g.db
