"""Hostile request values (issue 27.5): an id of 2^63 or more in any URL is a 404 (not
an OverflowError from SQLite and a 500); JSON nested too deeply is a 400 (not a
RecursionError); a too-large number in a form is a 400 - in the dashboard and the studio."""

from __future__ import annotations

import pytest
from label_support import studio_app
from web_support import logged_in, make_app

from device.web.request_guards import MAX_ROW_ID
from device.web.users import Role

HUGE = [MAX_ROW_ID + 1, 2**64, 10**40]
DEEP = ("[" * 100_000 + "]" * 100_000).encode()


def int_routes(app) -> list[tuple[str, str, list[str]]]:
    """(method, rule, its int arguments) for every route with an ``<int:...>`` part."""
    out = []
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items()  # noqa: SLF001
                if type(conv).__name__.endswith(("IntegerConverter", "RowIdConverter"))]
        if ints:
            out += [(m, rule.rule, ints) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


def url(rule: str, ints: list[str], value: int) -> str:
    for name in ints:
        rule = rule.replace(f"<int:{name}>", str(value))
    return rule


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("guards"))
    client, token = logged_in(app, Role.ADMIN)
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    return app, client


def test_every_int_route_of_the_dashboard_answers_404_to_a_huge_id(dashboard):
    app, client = dashboard
    routes = int_routes(app)
    assert len(routes) >= 16  # every method of every route with an id
    for method, rule, ints in routes:
        assert client.open(url(rule, ints, 999_999), method=method).status_code in (
            404, 400, 409, 405), rule  # the route is reached: an unknown id
        for value in HUGE:
            resp = client.open(url(rule, ints, value), method=method)
            assert resp.status_code == 404, (method, rule, value, resp.data[:200])


def test_deep_json_is_a_400_in_the_dashboard(dashboard):
    _, client = dashboard
    for path in ("/api/patients", "/api/scans/1/review"):
        resp = client.post(path, data=DEEP, content_type="application/json")
        assert resp.status_code == 400, (path, resp.data[:200])
        assert "JSON object" in resp.get_json()["error"]


@pytest.fixture
def studio(tmp_path):
    return studio_app(tmp_path)[0]


def studio_client(app, name):
    from test_label_web import login  # the studio's login, CSRF token included

    return login(app, name)


def test_the_studio_answers_huge_ids_deep_json_and_huge_form_numbers(studio):
    alice, _ = studio_client(studio, "alice")
    carol, token = studio_client(studio, "carol")
    routes = int_routes(studio)
    assert len(routes) >= 4
    for method, rule, ints in routes:
        for value in HUGE:
            for client in (alice, carol):
                resp = client.open(url(rule, ints, value), method=method, json={"boxes": []})
                assert resp.status_code == 404, (method, rule, value, resp.data[:200])
    resp = alice.put("/api/photos/1/answer", data=DEEP, content_type="application/json")
    assert resp.status_code == 400 and "JSON object" in resp.get_json()["error"]
    resp = carol.post("/adjudicate", data={"lesion": str(2**64), "sign": "erythema",
                                           "grade": "1", "csrf_token": token})
    assert resp.status_code == 404 and b"no lesion" in resp.data


def test_a_huge_number_met_by_sqlite_elsewhere_is_a_400():
    import sqlite3

    from flask import Flask, request

    from device.web.request_guards import install_request_guards

    app = Flask(__name__)
    install_request_guards(app)

    @app.get("/count")
    def count():
        n = int(request.args["n"])
        return str(sqlite3.connect(":memory:").execute("SELECT ?", (n,)).fetchone()[0])

    client = app.test_client()
    assert client.get(f"/count?n={MAX_ROW_ID}").data == str(MAX_ROW_ID).encode()
    resp = client.get(f"/count?n={MAX_ROW_ID + 1}")
    assert resp.status_code == 400 and b"too large" in resp.data
