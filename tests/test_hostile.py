"""Malformed photos and damaged packs, fed to the web API and the CLI (issue 16): every
bad input is a 4xx or exit code 2 with a message and no traceback, the web and the CLI
give the same answer to the same file, and nothing changes."""

from __future__ import annotations

import io
import json

import pytest
from hostile import BAD, PHOTO, damaged_packs, malformed_images
from web_support import fake_models, logged_in, make_app, tiny_pack_file

from device.__main__ import main as device_main
from device.packs.install import current_pack_dir, list_packs
from device.web.users import Role

IMAGES = malformed_images()


@pytest.fixture(scope="module")
def staff(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("hostile"))
    client, token = logged_in(app, Role.STAFF)
    client.post("/patients", data={"csrf_token": token, "patient_id": "P1", "birth_year": "1990"})
    return app, client, token


@pytest.fixture
def fake_cli_models(monkeypatch):
    import device.cli.scan as scan_cli

    monkeypatch.setattr(scan_cli, "load_models", lambda config, pack: fake_models())


def _scan_count(store) -> int:
    return sum(len(store.list_scans(v.id)) for v in store.list_visits("P1"))


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_malformed_image_same_answer_on_api_and_cli(staff, fake_cli_models, tmp_path, capsys,
                                                     name):
    app, client, token = staff
    data, suffix, kind = IMAGES[name]
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    store = app.config["TEST_STORE"]
    before = _scan_count(store)
    resp = client.post("/api/scan", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={"patient_id": "P1", "region": "trunk",
                             "image": (io.BytesIO(data), path.name)})
    code = device_main(["scan", "--image", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if kind == BAD:
        assert 400 <= resp.status_code < 500 and resp.status_code != 422, resp.get_json()
        assert len(resp.get_json()["error"]) > 20
        assert code == 2 and path.name in err  # names the file
        assert _scan_count(store) == before  # nothing saved
    else:
        assert kind == PHOTO
        assert (resp.status_code, code) in ((201, 0), (422, 1)), (resp.status_code, code, err)
        api_size = resp.get_json()["result"]["image_size"]
        assert json.loads(out)["image_size"] == api_size  # the same pixels, EXIF applied


def test_huge_declared_png_is_exit_2_with_a_message(fake_cli_models, tmp_path, capsys):
    """Issue 16, item 2: a PNG declaring 50000x50000 pixels (was a cv2 traceback, exit 1)."""
    path = tmp_path / "huge.png"
    path.write_bytes(IMAGES["huge_declared_png_50000"][0])
    assert device_main(["scan", "--image", str(path)]) == 2
    err = capsys.readouterr().err
    assert "50000x50000" in err and "resize it" in err and "Traceback" not in err


def test_exif_rotation_is_applied_alike(staff, fake_cli_models, tmp_path, capsys):
    app, client, token = staff
    data = IMAGES["exif_rotated_jpeg"][0]
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data)
    resp = client.post("/api/scan", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={"image": (io.BytesIO(data), path.name)})
    assert device_main(["scan", "--image", str(path)]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert resp.get_json()["result"]["image_size"] == cli["image_size"] == [320, 240]  # h, w


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    return damaged_packs(tiny_pack_file("2025.1.0"), tmp_path_factory.mktemp("damaged"))


@pytest.fixture(scope="module")
def technician(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("packs_app"), models=None)
    client, token = logged_in(app, Role.TECHNICIAN)
    return app, client, token


@pytest.mark.slow
def test_damaged_packs_refused_alike_by_flash_and_api(damaged, technician, tmp_path, capsys):
    app, client, token = technician
    packs_dir = tmp_path / "packs"
    assert device_main(["flash", str(tiny_pack_file("2025.1.0")), "--packs-dir",
                        str(packs_dir)]) == 0
    running = current_pack_dir(packs_dir)
    capsys.readouterr()
    for name, path in damaged.items():
        code = device_main(["flash", str(path), "--packs-dir", str(packs_dir)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and len(err) > 40, (name, err)
        assert current_pack_dir(packs_dir) == running, name
        resp = client.post("/api/packs", content_type="multipart/form-data",
                           headers={"X-CSRFToken": token},
                           data={"pack": (io.BytesIO(path.read_bytes()), path.name)})
        assert resp.status_code in (400, 415), (name, resp.status_code)
        body = resp.get_json()
        detail = " ".join([body["error"], *body.get("problems", [])])
        assert "/uploads/" not in detail, (name, detail)  # names the upload, not a temp file
    assert list_packs(app.extensions["atopiscan"].config.packs.dir) == []


@pytest.mark.slow
def test_golden_image_bomb_is_named(damaged, technician, capsys, tmp_path):
    """Issue 16, item 3: a golden image declaring 50000x50000 pixels, hashes consistent."""
    app, client, token = technician
    path = damaged["golden_image_bomb_png"]
    assert device_main(["flash", str(path), "--packs-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "50000x50000" in err and "rebuild" in err
    resp = client.post("/api/packs", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={"pack": (io.BytesIO(path.read_bytes()), path.name)})
    assert resp.status_code == 400
    assert any("50000x50000" in p for p in resp.get_json()["problems"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gzipped", "xz_compressed"])
def test_compressed_pack_refused_alike(damaged, technician, tmp_path, capsys, name):
    """Issue 16, item 9: flash accepted a gzipped pack that the upload refused."""
    app, client, token = technician
    path = damaged[name]
    assert device_main(["flash", str(path), "--packs-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "-compressed" in err and "decompress it first" in err
    resp = client.post("/api/packs", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={"pack": (io.BytesIO(path.read_bytes()), path.name)})
    assert resp.status_code == 415 and "decompress it first" in resp.get_json()["error"]
