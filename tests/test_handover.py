"""The two points issue 16 handed to the typed-contracts issue (#10), checked end to end
once it landed: the CLI and the dashboard read a photo alike (EXIF orientation, bytes
after a JPEG's end), and the running service purges images past storage.retention_days."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import yaml
from hostile import malformed_images
from web_support import fake_models, logged_in, make_app, write_frames

from device.__main__ import main as device_main
from device.core.vocab import Region, Sign
from device.store import Store
from device.web.users import Role


@pytest.mark.parametrize("name", ["exif_rotated_jpeg", "jpeg_trailing_bytes", "cmyk_jpeg",
                                  "rgb_16bit_png"])
def test_cli_and_web_see_the_same_pixels(tmp_path, monkeypatch, capsys, name):
    import device.cli.scan as scan_cli

    monkeypatch.setattr(scan_cli, "load_models", lambda config, pack: fake_models())
    data, suffix, _ = malformed_images()[name]
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    app = make_app(tmp_path / "app")
    client, token = logged_in(app, Role.STAFF)
    web = client.post("/api/scan", content_type="multipart/form-data",
                      headers={"X-CSRFToken": token},
                      data={"image": (io.BytesIO(data), path.name)}).get_json()["result"]
    assert device_main(["scan", "--image", str(path)]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert web["image_size"] == cli["image_size"]
    assert web["quality"]["measures"] == cli["quality"]["measures"]  # computed from the pixels
    assert web["crop"]["box"] == cli["crop"]["box"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_running_service_purges_expired_images(tmp_path):
    data_dir = tmp_path / "data"
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)
    store = Store(data_dir, clock=lambda: long_ago, retention_days=30)
    store.create_patient("P1", 1990)
    visit = store.open_visit("P1")
    scan = store.save_region_scan(visit.id, Region.TRUNK, grades={Sign.ERYTHEMA: 1},
                                  image=np.zeros((16, 16, 3), np.uint8))
    old_image = store.image_file(scan)
    assert old_image is not None and old_image.exists()
    store.close()
    write_frames(tmp_path / "frames", n=1)
    config = tmp_path / "device.yaml"
    config.write_text(yaml.safe_dump({
        "version": 1, "camera": {"source": "folder", "folder": "frames"},
        "packs": {"dir": "packs"}, "storage": {"data_dir": "data", "retention_days": 30}}))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "device", "run", "--config", str(config),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while old_image.exists() or not _up(port):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no purge within a minute of the start"
            time.sleep(0.3)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    reopened = Store(data_dir, retention_days=30)
    kept = reopened.get_scan(scan.id)
    assert kept.model_grades[Sign.ERYTHEMA] == 1 and kept.image_path is None  # record stays
    reopened.close()


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
