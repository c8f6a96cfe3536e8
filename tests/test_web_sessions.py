"""Sessions that end (logout, password change), and a login limit that a restart, many
user names or the change-password form do not get round (issue 16)."""

from __future__ import annotations

import pytest
from web_support import FAST_HASH, PASSWORD, copy_of_session, csrf_token, logged_in, login, make_app

from device.web import create_app
from device.web.auth import LoginLimiter
from device.web.sessions import SessionStore
from device.web.users import Role, UserStore


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)




def test_copied_cookie_dies_at_logout(app):
    client, token = logged_in(app, Role.STAFF)
    thief = copy_of_session(app, client)
    assert thief.get("/api/me").status_code == 200  # the copy works while the session lives
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert thief.get("/api/me").status_code == 401
    resp = thief.get("/scan")
    assert resp.status_code == 302 and resp.location.startswith("/login")


def test_password_change_ends_other_sessions_but_not_this_one(app):
    client, token = logged_in(app, Role.STAFF)
    thief = copy_of_session(app, client)
    other_browser, _ = logged_in(app, Role.STAFF)
    resp = client.post("/account/password", data={"csrf_token": token, "current": PASSWORD,
                                                   "new": "a-new-password-9",
                                                   "confirm": "a-new-password-9"})
    assert resp.status_code == 302
    assert client.get("/api/me").get_json()["username"] == "staff"
    assert thief.get("/api/me").status_code == 401
    assert other_browser.get("/api/me").status_code == 401
    assert app.extensions["atopiscan.sessions"].count("staff") == 1


def test_session_store_idle_expiry_and_revoke_user():
    now = [1000.0]
    store = SessionStore(None, max_idle_s=60, clock=lambda: now[0])
    a, b = store.create("ann"), store.create("ann")
    c = store.create("bob")
    assert store.user_of(a) == "ann" and store.user_of("forged") is None
    assert store.revoke_user("ann") == 2
    assert store.user_of(a) is None and store.user_of(b) is None and store.user_of(c) == "bob"
    now[0] += 61
    assert store.user_of(c) is None  # idle longer than the session lifetime


def test_limiter_counts_per_address_over_user_names():
    now = [0.0]
    limiter = LoginLimiter(max_failures=5, max_per_address=8, window_s=60,
                           clock=lambda: now[0])
    for i in range(8):  # one guess each at eight user names: under the per-name count
        assert limiter.retry_after(f"user{i}", "10.0.0.9") == 0
        limiter.failed(f"user{i}", "10.0.0.9")
    assert limiter.retry_after("user99", "10.0.0.9") == pytest.approx(60)
    assert limiter.retry_after("user99", "10.0.0.10") == 0  # another address is not blocked
    now[0] = 61
    assert limiter.retry_after("user99", "10.0.0.9") == 0


def test_spreading_guesses_over_user_names_is_limited(app):
    client = app.test_client()
    codes = [login(client, f"guess{i}", "wrong-password").status_code for i in range(25)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
    assert login(client, "staff", PASSWORD).status_code == 429  # this address waits now


def test_limit_survives_a_restart(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    for _ in range(5):
        assert login(client, "staff", "wrong-password").status_code == 401
    config = app.extensions["atopiscan"].config
    data_dir = app.extensions["atopiscan"].data_dir
    again = create_app(config, service=app.extensions["atopiscan"].service,
                       store=app.config["TEST_STORE"],
                       users=UserStore.in_data_dir(data_dir, hash_method=FAST_HASH), testing=True)
    assert login(again.test_client(), "staff", PASSWORD).status_code == 429


def test_change_password_guesses_are_limited(app):
    client, token = logged_in(app, Role.STAFF)
    codes = []
    for i in range(7):
        resp = client.post("/account/password", data={
            "csrf_token": token, "current": f"guess-{i}", "new": "a-new-password-9",
            "confirm": "a-new-password-9"})
        codes.append(resp.status_code)
    assert codes == [400] * 5 + [429] * 2
    assert "Too many wrong passwords" in resp.get_data(as_text=True)
    # the right password is refused too while locked, and nothing changed
    resp = client.post("/account/password", data={"csrf_token": token, "current": PASSWORD,
                                                   "new": "a-new-password-9",
                                                   "confirm": "a-new-password-9"})
    assert resp.status_code == 429
    users = app.extensions["atopiscan.users"]
    assert users.authenticate("staff", PASSWORD) is not None
    # and the same count guards the login form
    fresh = app.test_client()
    csrf_token(fresh)
    assert login(fresh, "staff", PASSWORD).status_code == 429
