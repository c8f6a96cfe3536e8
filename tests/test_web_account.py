"""A new login ends the session the browser had (a cookie copied before it dies), and the
account page lists the account's sessions with a button to end each (issue 27.9)."""

from __future__ import annotations

import re
import sqlite3

import pytest
from web_support import SESSION_COOKIE, copy_of_session, logged_in, login, make_app

from device.web.sessions import SessionStore, handle_of
from device.web.users import Role


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)




def test_a_new_login_ends_the_session_the_browser_had(app):
    client, _ = logged_in(app, Role.STAFF)
    thief = copy_of_session(app, client)
    assert thief.get("/api/me").status_code == 200
    assert login(client, "staff").status_code == 302  # logs in again in the same browser
    assert client.get("/api/me").status_code == 200
    assert thief.get("/api/me").status_code == 401  # the old cookie is dead
    assert app.extensions["atopiscan.sessions"].count("staff") == 1


def test_the_account_page_lists_sessions_and_ends_one(app):
    tablet, token = logged_in(app, Role.STAFF)
    laptop, _ = logged_in(app, Role.STAFF)
    other, _ = logged_in(app, Role.TECHNICIAN)
    page = tablet.get("/account/sessions")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    handles = re.findall(r'name="handle" value="([0-9a-f]{16})"', html)
    assert len(handles) == 2 and html.count("this browser") == 1  # the technician's: not shown
    sessions = app.extensions["atopiscan.sessions"]
    mine = {s.handle for s in sessions.sessions_of("staff")}
    assert set(handles) == mine
    theirs = next(s.handle for s in sessions.sessions_of("technician"))
    resp = tablet.post("/account/sessions/end", data={"csrf_token": token, "handle": theirs})
    assert resp.status_code == 302 and other.get("/api/me").status_code == 200  # not its own
    laptop_handle = next(h for h in handles if h != _own(tablet))
    tablet.post("/account/sessions/end", data={"csrf_token": token, "handle": laptop_handle})
    assert laptop.get("/api/me").status_code == 401 and tablet.get("/api/me").status_code == 200
    resp = tablet.post("/account/sessions/end", data={"csrf_token": token, "handle": _own(tablet)})
    assert resp.status_code == 302 and resp.location.startswith("/login")
    assert tablet.get("/api/me").status_code == 401


def test_end_all_other_sessions(app):
    first, token = logged_in(app, Role.STAFF)
    others = [logged_in(app, Role.STAFF)[0] for _ in range(3)]
    assert first.post("/account/sessions/end",
                      data={"csrf_token": token, "others": "1"}).status_code == 302
    assert all(c.get("/api/me").status_code == 401 for c in others)
    assert first.get("/api/me").status_code == 200
    assert app.extensions["atopiscan.sessions"].count("staff") == 1


def _own(client) -> str:
    from flask.sessions import SecureCookieSessionInterface

    app = client.application
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    return handle_of(serializer.loads(client.get_cookie(SESSION_COOKIE).value)["sid"])


def test_a_sessions_table_from_before_gains_the_address_column(tmp_path):
    path = tmp_path / "users.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, username TEXT NOT NULL,"
               " created REAL NOT NULL, seen REAL NOT NULL)")
    db.execute("INSERT INTO sessions VALUES ('old-sid', 'ann', 1.0, 1.0)")
    db.commit()
    db.close()
    store = SessionStore(path, max_idle_s=1e12)
    sid = store.create("ann", addr="10.0.0.7")
    assert {s.addr for s in store.sessions_of("ann")} == {"", "10.0.0.7"}
    assert store.revoke_handle("ann", handle_of(sid)) and store.user_of("old-sid") == "ann"
    assert not store.revoke_handle("bob", handle_of("old-sid"))
