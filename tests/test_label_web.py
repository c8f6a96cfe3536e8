"""The studio's web app through Flask's test client: login, queue, boxes and grades through
the API, errors, adjudication, and a save killed with SIGKILL half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from label_support import PASSWORD, add_users, make_project, studio_app

from trainer.label.annotations import all_photos, get_answer


@pytest.fixture
def studio(tmp_path):
    return studio_app(tmp_path)


def login_token(client):
    page = client.get("/login").data.decode()
    return page.split('name="csrf-token" content="')[1].split('"')[0]


def login(app, name):
    client = app.test_client()
    resp = client.post("/login", data={"username": name, "password": PASSWORD,
                                       "csrf_token": login_token(client)})
    assert resp.status_code == 302, resp.data
    page = client.get("/label" if name != "carol" else "/adjudicate")
    token = page.data.decode().split('name="csrf-token" content="')[1].split('"')[0]
    client.environ_base["HTTP_X_CSRF_TOKEN"] = token
    return client, token


BOX = {"x": 10, "y": 12, "w": 50, "h": 50, "erythema": 2, "excoriation": 1, "lichenification": 0}


def test_login_required_and_wrong_password(studio):
    app, _ = studio
    client = app.test_client()
    assert client.get("/label").status_code == 302
    assert client.get("/api/queue").status_code == 401
    resp = client.post("/login", data={"username": "alice", "password": "nope-nope",
                                       "csrf_token": login_token(client)})
    assert resp.status_code == 401 and b"wrong name or password" in resp.data


def test_rater_saves_boxes_and_never_sees_the_other_rater(studio):
    app, db = studio
    alice, _ = login(app, "alice")
    q = alice.get("/api/queue").get_json()
    assert q["progress"] == {"done": 0, "remaining": 2, "total": 2}
    pid = q["next"]
    resp = alice.put(f"/api/photos/{pid}/answer", json={"boxes": [BOX, {**BOX, "x": 90}]})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["progress"]["done"] == 1
    got = alice.get(f"/api/photos/{pid}").get_json()
    assert [b["x"] for b in got["boxes"]] == [10, 90] and got["boxes"][0]["erythema"] == 2
    bob, _ = login(app, "bob")
    seen = bob.get(f"/api/photos/{pid}").get_json()
    assert seen["boxes"] == [] and seen["status"] is None
    assert bob.get("/api/queue").get_json()["next"] == pid  # overlap: bob grades it too
    assert bob.put(f"/api/photos/{pid}/answer", json={"unusable": "blurred"}).status_code == 200
    assert get_answer(db, pid, "bob").status.value == "unusable"
    assert len(get_answer(db, pid, "alice").boxes) == 2


@pytest.mark.parametrize("body, status, words", [
    ({"boxes": [{**BOX, "erythema": 4}]}, 422, "boxes.0.erythema"),
    ({"boxes": [{**BOX, "x": 150}]}, 400, "outside the photo"),
    ({"boxes": []}, 422, "at least one lesion box"),
    ({"unusable": " "}, 422, "needs a reason"),
    ([1, 2], 400, "JSON object"),
])
def test_bad_answers_are_refused_and_change_nothing(studio, body, status, words):
    app, db = studio
    alice, _ = login(app, "alice")
    pid = all_photos(db)[0].id
    assert alice.put(f"/api/photos/{pid}/answer", json={"boxes": [BOX]}).status_code == 200
    resp = alice.put(f"/api/photos/{pid}/answer", json=body)
    assert resp.status_code == status and words in resp.get_json()["error"]
    assert [b.x for b in get_answer(db, pid, "alice").boxes] == [10]


def test_csrf_and_roles(studio):
    app, db = studio
    alice, _ = login(app, "alice")
    pid = all_photos(db)[0].id
    del alice.environ_base["HTTP_X_CSRF_TOKEN"]
    assert alice.put(f"/api/photos/{pid}/answer", json={"boxes": [BOX]}).status_code == 400
    carol, _ = login(app, "carol")
    assert carol.put(f"/api/photos/{pid}/answer", json={"boxes": [BOX]}).status_code == 403
    assert alice.get("/adjudicate").status_code == 403
    assert alice.get(f"/api/photos/{pid + 99}").status_code == 404
    image = alice.get(f"/photos/{pid}/image")
    assert image.status_code == 200 and image.data[:3] == b"\xff\xd8\xff"
    other = all_photos(db)[1]
    (app.config["PROJECT"].root.parent / "photos" / other.relpath).unlink()
    gone = alice.get(f"/photos/{other.id}/image")
    assert gone.status_code == 404 and other.relpath.encode() in gone.data


def test_adjudicator_decides_a_disputed_grade(studio):
    from trainer.label.consensus import all_consensus

    app, db = studio
    pid = all_photos(db)[0].id
    for name, grade in (("alice", 0), ("bob", 3)):
        client, _ = login(app, name)
        resp = client.put(f"/api/photos/{pid}/answer", json={"boxes": [{**BOX, "erythema": grade}]})
        assert resp.status_code == 200
    carol, token = login(app, "carol")
    page = carol.get("/adjudicate").data.decode()
    (c,) = all_consensus(db)
    assert f'id="lesion-{c.lesion.anchor}"' in page and "erythema" in page
    crop = carol.get(f"/photos/{pid}/crop?x=10&y=12&w=50&h=50")
    assert crop.status_code == 200 and crop.data[:2] == b"\xff\xd8"
    resp = carol.post("/adjudicate", data={"csrf_token": token, "lesion": c.lesion.anchor,
                                          "sign": "erythema", "grade": 1})
    assert resp.status_code == 302
    assert all_consensus(db)[0].grades[next(iter(c.disputed))] == 1
    bad = carol.post("/adjudicate", data={"csrf_token": token, "lesion": c.lesion.anchor,
                                         "sign": "erythema", "grade": 9})
    assert bad.status_code == 400


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from trainer.label import annotations
    from trainer.label.db import connect, open_project
    from trainer.label.models import AnnotationIn, BoxIn
    db = connect(open_project(sys.argv[1]))
    ids = [r[0] for r in db.execute("SELECT id FROM photos ORDER BY id")]
    state = {"n": 0}
    def hook():
        state["n"] += 1
        if state["n"] == 7:       # the second box of the fourth save
            print("MID-SAVE", flush=True)
            time.sleep(60)
    annotations.mid_save_hook = hook
    for k in range(100):
        boxes = [BoxIn(x=1, y=1, w=10 + k, h=10, erythema=k % 4, excoriation=0,
                       lichenification=1) for _ in range(2)]
        annotations.save_answer(db, ids[k % len(ids)], "alice", AnnotationIn(boxes=boxes))
""")


def test_kill_9_during_a_save_loses_nothing(tmp_path):
    from trainer.label.db import connect

    project, db = make_project(tmp_path, n_patients=2, per_patient=2)
    add_users(db)
    db.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(project.root)],
                            stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    line = proc.stdout.readline()
    assert line.strip() == "MID-SAVE" and time.monotonic() < deadline
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    db = connect(project)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = dict(db.execute("SELECT photo_id, COUNT(*) FROM boxes GROUP BY photo_id"))
    assert len(counts) == 3 and set(counts.values()) == {2}  # 3 whole saves, not the 4th
    assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 3


# -- issue 27 item 8: the studio's sign-in is the dashboard's --------------------------


def test_login_without_csrf_token_is_refused(studio):
    app, _ = studio
    client = app.test_client()
    resp = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert resp.status_code == 400 and b"form token" in resp.data
    assert client.get("/api/queue").status_code == 401


def test_wrong_passwords_are_limited(studio):
    app, _ = studio
    client = app.test_client()
    token = login_token(client)
    codes = [client.post("/login", data={"username": "alice", "password": f"wrong-{i}",
                                         "csrf_token": token}).status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    # the right password from the same address waits too: no sixth guess gets through
    right = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                        "csrf_token": token})
    assert right.status_code == 429 and b"too many failed attempts" in right.data


def test_a_cookie_copied_before_logout_is_dead(studio):
    app, _ = studio
    alice, token = login(app, "alice")
    copied = alice.get_cookie("session").value
    assert alice.post("/logout", data={"csrf_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/api/queue").status_code == 401


def test_a_cookie_copied_before_a_password_change_is_dead(studio, capsys):
    import argparse
    import io
    import sys as _sys

    from trainer.label.cli import do_adduser

    app, _ = studio
    alice, _ = login(app, "alice")
    assert alice.get("/api/queue").status_code == 200
    args = argparse.Namespace(project=app.config["PROJECT"].root, name="alice", role="rater",
                              password_stdin=True)
    old_stdin, _sys.stdin = _sys.stdin, io.StringIO("a-new-password-1\n")
    try:
        assert do_adduser(args) == 0
    finally:
        _sys.stdin = old_stdin
    assert "ended 1 open login(s)" in capsys.readouterr().out
    assert alice.get("/api/queue").status_code == 401


def test_a_rater_cannot_grade_a_photo_outside_their_queue(tmp_path):
    from trainer.label.agreement import multi_rater_photos
    from trainer.label.web import create_app

    project, db = make_project(tmp_path, overlap=0.0, n_patients=2, per_patient=1)
    add_users(db)
    app = create_app(project)
    first, second = all_photos(db)
    alice, _ = login(app, "alice")
    assert alice.put(f"/api/photos/{first.id}/answer", json={"boxes": [BOX]}).status_code == 200
    bob, _ = login(app, "bob")
    assert bob.get("/api/queue").get_json()["next"] == second.id  # first is alice's alone
    resp = bob.put(f"/api/photos/{first.id}/answer", json={"boxes": [{**BOX, "erythema": 0}]})
    assert resp.status_code == 403 and "not in bob's queue" in resp.get_json()["error"]
    assert get_answer(db, first.id, "bob").status is None
    assert first.id not in multi_rater_photos(db)  # so not in the agreement figures either
    # her own answer she may change; bob his own queue
    assert alice.put(f"/api/photos/{first.id}/answer", json={"unusable": "blurred"}).status_code == 200
    assert bob.put(f"/api/photos/{second.id}/answer", json={"boxes": [BOX]}).status_code == 200
