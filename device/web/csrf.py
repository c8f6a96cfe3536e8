"""CSRF protection for every state-changing request (Flask-WTF): one setup for the
dashboard and the labelling studio (trainer.label.web), so both check the same way.

Every POST, PUT, PATCH and DELETE, the login form included, carries the session's
token as the ``csrf_token`` form field or the ``X-CSRFToken`` / ``X-CSRF-Token``
header; pages get it from ``csrf_token()`` in templates. A failure is a
``flask_wtf.csrf.CSRFError`` (a 400), which each app words for its own users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask
    from flask_wtf.csrf import CSRFProtect

#: The token lives as long as the session, which expires on its own (idle limit, logout).
CSRF_CONFIG = {"WTF_CSRF_TIME_LIMIT": None,
               "WTF_CSRF_HEADERS": ["X-CSRFToken", "X-CSRF-Token"]}


def init_csrf(app: Flask) -> CSRFProtect:
    """Protect ``app`` (call after the login check is registered: 401 before 400)."""
    from flask_wtf.csrf import CSRFProtect

    app.config.update(CSRF_CONFIG)
    return CSRFProtect(app)
