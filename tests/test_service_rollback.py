"""A pack that installs but fails to load in the running service rolls itself back, and
the status page says so (issue 16)."""

from __future__ import annotations

import io
import os

import pytest
from web_support import fake_models, logged_in, make_app, tiny_pack_file

from device.cameras import FolderCamera, RetryingCamera
from device.grading.models import ModelSet, ModelSetError
from device.packs.install import current_pack_dir, list_packs
from device.scan.service import Service
from device.web.users import Role


def _fake_packs(packs_dir, broken: set[str]):
    """store/<version> folders with current -> 2.0 and previous -> 1.0 (install's layout),
    and a loader that fails for the versions in ``broken``."""
    for version in ("1.0", "2.0"):
        (packs_dir / "store" / version).mkdir(parents=True)
    os.symlink("store/2.0", packs_dir / "current")
    os.symlink("store/1.0", packs_dir / "previous")

    def load(pack_dir, threads=2, **kw):
        if pack_dir.name in broken:
            raise ModelSetError(f"{pack_dir.name}: the interpreter refused the model")
        return fake_models(pack_dir.name)

    return load


@pytest.fixture
def service_for(tmp_path, monkeypatch):
    def make(broken: set[str]) -> Service:
        app = make_app(tmp_path, models=None)
        config = app.extensions["atopiscan"].config
        monkeypatch.setattr(ModelSet, "from_pack_dir", _fake_packs(config.packs.dir, broken))
        camera = RetryingCamera(FolderCamera(config.camera.folder), retry_seconds=0.01)
        return Service.from_config(config, camera=camera)
    return make


def test_start_rolls_back_a_pack_that_does_not_load(service_for):
    service = service_for({"2.0"})
    assert service.pack_version == "1.0" and service.model_error is None
    note = service.rollback_note
    assert note.failed_pack == "2.0" and note.running == "1.0"
    assert "interpreter refused" in note.error
    assert current_pack_dir(service.config.packs.dir).name == "1.0"  # the disk agrees


def test_when_neither_loads_the_disk_is_left_as_it_was(service_for):
    service = service_for({"1.0", "2.0"})
    assert service.models is None
    assert "did not load either" in service.model_error
    assert service.rollback_note.running is None
    assert current_pack_dir(service.config.packs.dir).name == "2.0"


def test_a_pack_that_loads_is_not_rolled_back(service_for):
    service = service_for(set())
    assert service.pack_version == "2.0" and service.rollback_note is None


def test_status_page_says_so(tmp_path, monkeypatch):
    app = make_app(tmp_path, models=None)
    config = app.extensions["atopiscan"].config
    monkeypatch.setattr(ModelSet, "from_pack_dir", _fake_packs(config.packs.dir, {"2.0"}))
    service = app.extensions["atopiscan"].service
    assert service.load_or_roll_back() == "1.0"
    client, _ = logged_in(app, Role.TECHNICIAN)
    status = client.get("/api/status").get_json()["pack"]
    assert status["version"] == "1.0" and status["rolled_back"]["failed_pack"] == "2.0"
    html = client.get("/status").get_data(as_text=True)
    assert 'id="rolled-back"' in html and "Automatic rollback" in html and "1.0 is in use" in html


@pytest.mark.slow
def test_dashboard_install_that_fails_to_load_rolls_back(tmp_path, monkeypatch):
    app = make_app(tmp_path, models=None)
    client, token = logged_in(app, Role.TECHNICIAN)
    service = app.extensions["atopiscan"].service
    real = ModelSet.from_pack_dir.__func__

    def load(cls, pack_dir, *a, **kw):
        if pack_dir.name.startswith("2025.2.0"):
            raise ModelSetError("out of memory while loading the model")
        return real(cls, pack_dir, *a, **kw)

    for version in ("2025.1.0", "2025.2.0"):
        data = tiny_pack_file(version).read_bytes()
        if version == "2025.2.0":  # passes the install checks, then fails to load
            monkeypatch.setattr(ModelSet, "from_pack_dir", classmethod(load))
        resp = client.post("/api/packs", content_type="multipart/form-data",
                           headers={"X-CSRFToken": token},
                           data={"pack": (io.BytesIO(data), f"{version}.tar")})
        assert resp.status_code == (201 if version == "2025.1.0" else 422), resp.get_json()
    body = resp.get_json()
    assert "failed to load on this device" in body["error"]
    assert body["rolled_back"]["running"] == "2025.1.0"
    assert "out of memory" in body["rolled_back"]["error"]
    assert service.pack_version == "2025.1.0"
    packs = {p.version: p for p in list_packs(app.extensions["atopiscan"].config.packs.dir)}
    assert packs["2025.1.0"].current and packs["2025.2.0"].previous
    assert "Automatic rollback" in client.get("/status").get_data(as_text=True)


@pytest.mark.parametrize("broken, words", [
    ({"1.0", "2.0"}, "both installed model packs failed their checks"),
    ({"2.0"}, None),  # rolled back: scans work
])
def test_a_scan_says_both_packs_failed_not_that_none_is_installed(tmp_path, monkeypatch,
                                                                   broken, words):
    from device.grading.models import PacksFailedError

    app = make_app(tmp_path, models=None)
    config = app.extensions["atopiscan"].config
    monkeypatch.setattr(ModelSet, "from_pack_dir", _fake_packs(config.packs.dir, broken))
    service = app.extensions["atopiscan"].service
    if words:
        with pytest.raises(PacksFailedError):
            service.load_or_roll_back()
    else:
        service.load_or_roll_back()
    client, token = logged_in(app, Role.STAFF)
    hdr = {"X-CSRFToken": token}
    assert client.post("/api/patients", json={"patient_id": "P1"}, headers=hdr).status_code == 201
    resp = client.post("/api/scan", data={"patient_id": "P1", "region": "trunk"}, headers=hdr)
    if words is None:
        assert resp.status_code == 201, resp.get_json()
        return
    error = resp.get_json()["error"]
    assert resp.status_code == 503 and words in error, error
    assert "no model pack is installed" not in error
    assert "2.0: the interpreter refused" in error and "1.0: the interpreter refused" in error


def test_a_scan_with_nothing_installed_still_says_so(tmp_path, caplog):
    from device.grading.models import NoPackDirError

    app = make_app(tmp_path, models=None)
    service = app.extensions["atopiscan"].service
    with pytest.raises(NoPackDirError):
        service.load_or_roll_back()
    assert "failed to load" not in caplog.text and service.rollback_note is None
    client, token = logged_in(app, Role.STAFF)
    hdr = {"X-CSRFToken": token}
    client.post("/api/patients", json={"patient_id": "P1"}, headers=hdr)
    resp = client.post("/api/scan", data={"patient_id": "P1", "region": "trunk"}, headers=hdr)
    assert resp.status_code == 503 and "no model pack is installed" in resp.get_json()["error"]
