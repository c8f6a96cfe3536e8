"""A user's own sessions: ``GET /account/sessions`` lists the browsers logged in to the
account (when each logged in, from where, when last active), and ``POST
/account/sessions/end`` ends one of them (``handle``) or every other (``others=1``).
Ending this browser's own session logs it out. Every role may see and end its own."""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from device.web.auth import current_user
from device.web.sessions import SessionStore, handle_of

bp = Blueprint("account", __name__)


def _sessions() -> SessionStore:
    return current_app.extensions["atopiscan.sessions"]


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


@bp.get("/account/sessions")
def sessions_page() -> ResponseReturnValue:
    user = current_user()
    assert user is not None  # check_login ran
    mine = handle_of(session["sid"])
    rows = [{"handle": s.handle, "created": _when(s.created), "seen": _when(s.seen),
             "addr": s.addr or "unknown", "current": s.handle == mine}
            for s in _sessions().sessions_of(user.username)]
    return render_template("sessions.html", sessions=rows)


@bp.post("/account/sessions/end")
def end_session() -> ResponseReturnValue:
    user = current_user()
    assert user is not None
    mine = handle_of(session["sid"])
    if request.form.get("others"):
        ended = sum(_sessions().revoke_handle(user.username, s.handle)
                    for s in _sessions().sessions_of(user.username) if s.handle != mine)
        flash(f"Ended {ended} other session(s) of this account.", "info")
        return redirect(url_for("account.sessions_page"))
    handle = (request.form.get("handle") or "").strip()
    if not _sessions().revoke_handle(user.username, handle):
        flash("That session has already ended.", "warning")
        return redirect(url_for("account.sessions_page"))
    if handle == mine:
        session.clear()
        flash("Logged out.", "info")
        return redirect(url_for("auth.login"))
    flash("Session ended: that browser must log in again.", "info")
    return redirect(url_for("account.sessions_page"))
