"""Dashboard login, roles, CSRF, rate limit, session expiry, secret key, users."""

from __future__ import annotations

import sqlite3
import stat
import time

import pytest
from web_support import FAST_HASH, PASSWORD, csrf_token, logged_in, login, make_app

from device.web.auth import PUBLIC_ENDPOINTS, LoginLimiter, load_secret_key
from device.web.users import Role, UserError, UserStore


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def _url(rule) -> str:
    """A concrete URL for a rule (placeholder arguments)."""
    values = {"patient_id": "P1", "visit_id": 1, "scan_id": 1, "lesion_id": 1, "region": "trunk",
              "fmt": "csv", "filename": "style.css"}
    url = rule.rule
    for arg in rule.arguments:
        url = url.replace(f"<int:{arg}>", str(values[arg])).replace(f"<{arg}>", str(values[arg]))
        url = url.replace(f"<path:{arg}>", str(values[arg]))
    return url


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def test_only_healthz_is_open_without_login(app):
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    checked = 0
    for rule, method in _routes(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        resp = client.open(_url(rule), method=method)
        checked += 1
        if rule.rule.startswith("/api/"):
            assert resp.status_code == 401, (rule.rule, method)
            assert "login" in resp.get_json()["error"]
        else:
            assert resp.status_code == 302, (rule.rule, method)
            assert resp.location.startswith("/login"), (rule.rule, resp.location)
    assert checked >= 30
    # The public pages hold no data: the login form and the stylesheet.
    assert client.get("/login").status_code == 200
    assert client.get("/static/style.css").status_code == 200


ROLE_PAGES = {
    Role.STAFF: ["/scan", "/patients", "/api/patients"],
    Role.TECHNICIAN: ["/status", "/api/status", "/models", "/api/packs"],
}


@pytest.mark.parametrize("role", [Role.STAFF, Role.TECHNICIAN, Role.ADMIN])
def test_roles(app, role):
    client, _ = logged_in(app, role)
    for page_role, urls in ROLE_PAGES.items():
        allowed = role is Role.ADMIN or role is page_role
        for url in urls:
            resp = client.get(url)
            assert resp.status_code == (200 if allowed else 403), (role, url, resp.status_code)
            if not allowed and url.startswith("/api/"):
                assert "role" in resp.get_json()["error"]


def test_wrong_role_refused_on_state_changing_calls(app):
    tech, token = logged_in(app, Role.TECHNICIAN)
    resp = tech.post("/api/patients", json={"patient_id": "X1"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 403
    staff, token = logged_in(app, Role.STAFF)
    resp = staff.post("/api/packs/rollback", headers={"X-CSRFToken": token})
    assert resp.status_code == 403
    resp = staff.post("/models/rollback", data={"csrf_token": token})
    assert resp.status_code == 403
    assert app.config["TEST_STORE"].list_patients() == []


def test_every_post_needs_a_csrf_token(app):
    client, token = logged_in(app, Role.ADMIN)
    for rule, method in _routes(app):
        if method != "POST" or rule.endpoint == "auth.login":
            continue
        resp = client.post(_url(rule), data={})
        assert resp.status_code == 400, (rule.rule, resp.status_code)
        body = resp.get_json() if rule.rule.startswith("/api/") else None
        text = body["error"] if body else resp.get_data(as_text=True)
        assert "CSRF" in text, rule.rule
    # a wrong token is refused too, and nothing was created
    resp = client.post("/api/patients", json={"patient_id": "P9"}, headers={"X-CSRFToken": "bad"})
    assert resp.status_code == 400
    assert app.config["TEST_STORE"].list_patients() == []
    # with the header token the same call works
    resp = client.post("/api/patients", json={"patient_id": "P9"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 201


def test_login_form_needs_csrf(app):
    client = app.test_client()
    resp = client.post("/login", data={"username": "staff", "password": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/scan").status_code == 302  # not logged in


def test_wrong_password_and_rate_limit(app):
    client = app.test_client()
    for _ in range(5):
        resp = login(client, "staff", "wrong-password")
        assert resp.status_code == 401
        assert "Wrong user name or password" in resp.get_data(as_text=True)
    # locked now, even with the right password
    resp = login(client, "staff", PASSWORD)
    assert resp.status_code == 429
    assert "Too many failed attempts" in resp.get_data(as_text=True)
    # another user from the same address is not locked out
    assert login(client, "technician", PASSWORD).status_code == 302


def test_limiter_window_and_keys():
    now = [0.0]
    limiter = LoginLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        limiter.failed("Ann", "10.0.0.1")
    assert limiter.retry_after("ann", "10.0.0.1") == pytest.approx(60)
    assert limiter.retry_after("ann", "10.0.0.2") == 0  # per username + address
    now[0] = 61
    assert limiter.retry_after("ann", "10.0.0.1") == 0
    limiter.failed("ann", "10.0.0.1")
    limiter.succeeded("ann", "10.0.0.1")
    assert limiter.retry_after("ann", "10.0.0.1") == 0


def test_session_expires_after_idle_minutes(app):
    client, _ = logged_in(app, Role.STAFF)
    assert client.get("/scan").status_code == 200
    with client.session_transaction() as sess:
        sess["seen"] = time.time() - 31 * 60  # session_minutes is 30
    resp = client.get("/scan")
    assert resp.status_code == 302 and resp.location.startswith("/login")
    assert client.get("/api/patients").status_code == 401


def test_activity_keeps_session_alive(app):
    client, _ = logged_in(app, Role.STAFF)
    with client.session_transaction() as sess:
        sess["seen"] = time.time() - 29 * 60
    assert client.get("/scan").status_code == 200
    with client.session_transaction() as sess:
        assert time.time() - sess["seen"] < 5
    assert app.permanent_session_lifetime.total_seconds() == 30 * 60


def test_logout_needs_post_and_ends_session(app):
    client, token = logged_in(app, Role.STAFF)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/scan").status_code == 302


def test_login_redirects_only_within_the_site(app):
    client = app.test_client()
    token = csrf_token(client)
    resp = client.post("/login", data={"username": "staff", "password": PASSWORD,
                                       "csrf_token": token, "next": "https://evil.example/x"})
    assert resp.status_code == 302 and resp.location == "/"
    client = app.test_client()
    token = csrf_token(client)
    resp = client.post("/login", data={"username": "staff", "password": PASSWORD,
                                       "csrf_token": token, "next": "/patients?q=a"})
    assert resp.location == "/patients?q=a"


def test_secret_key_generated_once_with_mode_0600(tmp_path):
    key = load_secret_key(tmp_path)
    path = tmp_path / "web_secret_key"
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(tmp_path) == key
    path.chmod(0o644)
    assert load_secret_key(tmp_path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_passwords_are_hashed(tmp_path):
    UserStore(tmp_path / "default.sqlite").add("ann", "s3cret-pass", "staff")
    raw = sqlite3.connect(tmp_path / "default.sqlite").execute("SELECT password_hash FROM users")
    assert raw.fetchone()[0].startswith("scrypt:")  # werkzeug's default on the device
    users = UserStore(tmp_path / "u.sqlite", hash_method=FAST_HASH)
    users.add("ann", "s3cret-pass", "staff")
    raw = sqlite3.connect(tmp_path / "u.sqlite").execute("SELECT password_hash FROM users").fetchone()[0]
    assert "s3cret-pass" not in raw and raw.startswith("pbkdf2:")
    assert users.authenticate("ann", "s3cret-pass").role is Role.STAFF
    assert users.authenticate("ann", "wrong") is None
    assert users.authenticate("nobody", "s3cret-pass") is None
    with pytest.raises(UserError, match="already exists"):
        users.add("ann", "another-pass", "admin")
    with pytest.raises(UserError, match="too short"):
        users.add("bob", "short", "staff")
    with pytest.raises(ValueError, match="unknown role"):
        users.add("bob", "long-enough", "doctor")
    with pytest.raises(UserError, match="invalid user name"):
        users.add("bob smith", "long-enough", "staff")


def test_setup_user_must_change_one_time_password(tmp_path):
    app = make_app(tmp_path)
    users = app.extensions["atopiscan.users"]
    assert users.ensure_setup_user() is None  # users exist: nothing created
    fresh = UserStore(tmp_path / "fresh.sqlite", hash_method=FAST_HASH)
    password = fresh.ensure_setup_user("root")
    assert password and len(password) >= 12 and fresh.get("root").must_change_password
    assert fresh.ensure_setup_user("root") is None
    # through the app: a must-change user is sent to the password page until it changes
    users.add("setup", "one-time-pass1", Role.ADMIN, must_change_password=True)
    client = app.test_client()
    resp = login(client, "setup", "one-time-pass1")
    assert resp.location == "/account/password"
    assert client.get("/scan").location == "/account/password"
    token = csrf_token(client)
    assert client.get("/api/patients").status_code == 403
    resp = client.post("/account/password", data={"csrf_token": token, "current": "one-time-pass1",
                                                   "new": "my-own-pass-1", "confirm": "my-own-pass-1"})
    assert resp.status_code == 302
    assert client.get("/scan").status_code == 200
    assert users.authenticate("setup", "my-own-pass-1") is not None
    assert users.authenticate("setup", "one-time-pass1") is None


def test_change_password_refusals(app):
    client, token = logged_in(app, Role.STAFF)
    bad = [("wrong", "new-password-1", "new-password-1", "current password is wrong"),
           (PASSWORD, "new-password-1", "other-password", "differ"),
           (PASSWORD, "short", "short", "too short")]
    for current, new, confirm, message in bad:
        resp = client.post("/account/password", data={"csrf_token": token, "current": current,
                                                       "new": new, "confirm": confirm})
        assert resp.status_code == 400 and message in resp.get_data(as_text=True)


def test_security_headers(app):
    client, _ = logged_in(app, Role.STAFF)
    resp = client.get("/scan")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
    cookie = client.get_cookie("atopiscan_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
