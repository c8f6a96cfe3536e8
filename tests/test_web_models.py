"""Models page and /api/packs: refusals (fast) and a real install + rollback (slow)."""

from __future__ import annotations

import io
import tarfile

import pytest
from web_support import logged_in, make_app, tiny_pack_file

from device.packs.install import current_pack_dir, list_packs
from device.web.users import Role


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, models=None)


def _tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _upload(client, token, data: bytes, name="pack.tar", url="/models/upload"):
    field = "pack"
    return client.post(url, content_type="multipart/form-data", headers={"X-CSRFToken": token},
                       data={"csrf_token": token, field: (io.BytesIO(data), name)})


def test_models_page_without_packs(app):
    client, _ = logged_in(app, Role.TECHNICIAN)
    html = client.get("/models").get_data(as_text=True)
    assert "No packs installed yet" in html and 'id="upload-form"' in html
    assert client.get("/api/packs").get_json() == {
        "packs": [], "running": {"loaded": False, "version": None, "error": None, "models": {}}}


@pytest.mark.parametrize("data,status,message", [
    (b"", 400, "empty"),
    (b"this is not a tar file at all" * 40, 415, "not a model pack"),
    # tar magic but a broken header: tarfile.is_tarfile says no
    (b"\x00" * 257 + b"ustar" + b"\x00" * 800, 415, "not a model pack"),
    (_tar_of({"notes.txt": b"hello"}), 400, "refused; nothing changed"),  # a tar, not a pack
])
def test_bad_pack_uploads_change_nothing(app, data, status, message):
    client, token = logged_in(app, Role.ADMIN)
    resp = _upload(client, token, data)
    assert resp.status_code == status and message in resp.get_data(as_text=True)
    resp = _upload(client, token, data, url="/api/packs")
    assert resp.status_code == status and message in resp.get_json()["error"]
    packs_dir = app.extensions["atopiscan"].config.packs.dir
    assert list_packs(packs_dir) == [] and current_pack_dir(packs_dir) is None
    uploads = app.extensions["atopiscan"].data_dir / "uploads"
    assert not any(uploads.iterdir())  # the temporary upload is removed


def test_missing_file_and_rollback_without_previous(app):
    client, token = logged_in(app, Role.TECHNICIAN)
    resp = client.post("/models/upload", data={"csrf_token": token})
    assert resp.status_code == 400 and "choose a pack file" in resp.get_data(as_text=True)
    resp = client.post("/api/packs/rollback", headers={"X-CSRFToken": token})
    assert resp.status_code == 409 and "no previous pack" in resp.get_json()["error"]
    resp = client.post("/models/rollback", data={"csrf_token": token})
    assert resp.status_code == 409


def test_staff_cannot_upload_or_roll_back(app):
    client, token = logged_in(app, Role.STAFF)
    assert client.get("/models").status_code == 403
    assert _upload(client, token, b"x").status_code == 403
    assert _upload(client, token, b"x", url="/api/packs").status_code == 403


@pytest.mark.slow
def test_install_and_roll_back_from_the_dashboard(app):
    pack1, pack2 = tiny_pack_file("2025.1.0"), tiny_pack_file("2025.2.0")
    client, token = logged_in(app, Role.TECHNICIAN)
    service = app.extensions["atopiscan"].service
    resp = _upload(client, token, pack1.read_bytes(), name="first.tar")
    assert resp.status_code == 302
    assert "self-test passed" in client.get("/models").get_data(as_text=True)
    assert service.pack_version == "2025.1.0"  # reloaded without a restart
    body = _upload(client, token, pack2.read_bytes(), url="/api/packs").get_json()
    assert body["installed"]["version"] == "2025.2.0" and body["reload_error"] is None
    assert "self-test" in body["report"]
    assert service.pack_version == "2025.2.0"
    html = client.get("/models").get_data(as_text=True)
    assert 'id="rollback"' in html and "tiny_test" in html  # the cards' backbone
    assert "measured on synthetic data" in html
    assert "Unfamiliar images: cannot abstain (no statistics in this pack)" in html
    packs = client.get("/api/packs").get_json()["packs"]
    assert [(p["version"], p["current"], p["previous"]) for p in packs] == [
        ("2025.2.0", True, False), ("2025.1.0", False, True)]
    assert set(packs[0]["cards"]) == {"erythema", "excoriation", "lichenification"}
    resp = client.post("/models/rollback", data={"csrf_token": token})
    assert resp.status_code == 302 and service.pack_version == "2025.1.0"
    # a tampered pack is refused and the running pack stays
    data = bytearray(pack2.read_bytes())
    at = data.index(b"TFL3")
    data[at + 200] ^= 0xFF
    resp = _upload(client, token, bytes(data), url="/api/packs")
    assert resp.status_code == 400 and resp.get_json()["problems"]
    assert service.pack_version == "2025.1.0"
    # the models really grade: a scan through the installed pack
    staff, stoken = logged_in(app, Role.STAFF)
    resp = staff.post("/api/scan", json={}, headers={"X-CSRFToken": stoken})
    assert resp.status_code == 200
    assert resp.get_json()["result"]["pack_version"] == "2025.1.0"


def test_abstention_lines_name_their_sign_when_they_differ():
    from pathlib import Path

    from jinja2 import Environment, FileSystemLoader

    import device.web

    env = Environment(loader=FileSystemLoader(Path(device.web.__file__).parent / "templates"))
    page = env.from_string("{% from '_cards.html' import card_table %}{{ card_table(cards, []) }}")

    def card(line):
        return {"backbone": "b", "quantization": "int8", "input_size": [96, 96], "held_out": {},
                "abstention": line}

    same = page.render(cards={"erythema": card("past 3"), "excoriation": card("past 3")})
    assert same.count("Unfamiliar images") == 1 and "Unfamiliar images: past 3." in same
    differ = page.render(cards={"erythema": card("past 3"), "excoriation": card("past 4")})
    assert "Unfamiliar images, erythema: past 3." in differ
    assert "Unfamiliar images, excoriation: past 4." in differ
