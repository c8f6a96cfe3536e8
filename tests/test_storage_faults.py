"""A full or read-only data disk (issue 16): staff get a clear 507/503, the CLIs one line
and exit 2, and nothing saved before is lost. Uses real small tmpfs mounts (root only;
skipped where mounting is not allowed)."""

from __future__ import annotations

import errno
import io
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from web_support import PASSWORD, logged_in, make_app, write_frames

from device.__main__ import main as device_main
from device.web.users import Role, UserStore


def _mount(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")


@pytest.fixture
def disk(tmp_path):
    mnt = tmp_path / "disk"
    _mount(mnt, "8m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def read_only_view(disk, tmp_path):
    """A read-only view of ``disk`` (a bind mount remounted ro): what a failing SD card
    that the kernel switched to read-only looks like to the service."""
    view = tmp_path / "ro"
    view.mkdir()

    def make() -> Path:
        subprocess.run(["mount", "--bind", str(disk), str(view)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        return view

    yield make
    subprocess.run(["umount", "-l", str(view)], check=False)


def _fill(mnt: Path) -> Path:
    filler = mnt / "filler.bin"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (64 << 10))
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _config_file(root: Path, data_dir: Path) -> Path:
    write_frames(root / "frames", n=1)
    path = root / "device.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1, "camera": {"source": "folder", "folder": "frames"},
        "packs": {"dir": "packs"}, "storage": {"data_dir": str(data_dir)}, "web": {"port": 8123}}))
    return path


def test_adduser_on_a_read_only_data_folder(disk, read_only_view, monkeypatch, capsys):
    UserStore.in_data_dir(disk / "data").add("ann", PASSWORD, Role.STAFF)  # an existing store
    view = read_only_view()
    for data in (view / "data", view / "fresh"):
        monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
        code = device_main(["adduser", "bob", "--role", "staff", "--data-dir", str(data),
                            "--password-stdin"])
        err = capsys.readouterr().err
        assert code == 2 and "cannot be written" in err and "Traceback" not in err, err
    assert UserStore.in_data_dir(disk / "data").get("ann") is not None  # nothing lost


def test_run_on_a_read_only_data_folder(disk, read_only_view, tmp_path, capsys):
    config = _config_file(tmp_path, read_only_view() / "data")
    assert device_main(["run", "--config", str(config), "--port", "8124"]) == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "cannot be written" in err and "Traceback" not in err


def _jpeg(seed: int = 5) -> bytes:
    from device.cameras import render_skin_frame

    frame, _ = render_skin_frame(np.random.default_rng(seed), 480, 360)
    return cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes()


def _post_scan(client, token):
    return client.post("/api/scan", content_type="multipart/form-data",
                       headers={"X-CSRFToken": token},
                       data={"patient_id": "P1", "region": "trunk",
                             "image": (io.BytesIO(_jpeg()), "lesion.jpg")})


def test_full_disk_is_507_for_staff_and_loses_nothing(disk):
    app = make_app(disk)
    client, token = logged_in(app, Role.STAFF)
    h = {"X-CSRFToken": token}
    assert client.post("/api/patients", json={"patient_id": "P1"}, headers=h).status_code == 201
    saved = _post_scan(client, token)
    assert saved.status_code == 201
    scan_id = saved.get_json()["scan"]["id"]
    store = app.config["TEST_STORE"]
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no spare room left in the WAL
    filler = _fill(disk)

    answers = {
        "patient": client.post("/api/patients", json={"patient_id": "P2"}, headers=h),
        "scan": _post_scan(client, token),
        "review": client.post(f"/api/scans/{scan_id}/review", json={"papulation": 2},
                              headers=h),
        "page": client.post("/patients", data={"csrf_token": token, "patient_id": "P3",
                                               "birth_year": "1990"}),
    }
    for what, resp in answers.items():
        assert resp.status_code == 507, (what, resp.status_code, resp.get_data(as_text=True)[:300])
        text = resp.get_data(as_text=True)
        assert "disk is full" in text and "nothing was saved" in text, what
        assert "Errno" not in text, what
    assert "Disk full" in answers["page"].get_data(as_text=True)  # the page's title

    # nothing half-saved, nothing lost; once there is space again, saving works
    assert [p.id for p in store.list_patients()] == ["P1"]
    visit = store.list_visits("P1")[0]
    assert [s.id for s in store.list_scans(visit.id)] == [scan_id]
    assert store.get_scan(scan_id).papulation is None
    files = [p for p in (store.data_dir / "images").rglob("*") if p.is_file()]
    assert len(files) == 2  # the first scan's crop and frame, no orphan of the refused one
    filler.unlink()
    assert _post_scan(client, token).status_code == 201
