"""``python -m device run`` (options, first-start setup password, loopback default)
and ``python -m device adduser``."""

from __future__ import annotations

import argparse
import io
import time

import pytest
import yaml
from web_support import write_frames

from device.__main__ import main
from device.cli import run as run_cli
from device.web.users import Role, UserStore


@pytest.fixture
def config_file(tmp_path):
    write_frames(tmp_path / "frames", n=1)
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1, "camera": {"source": "folder", "folder": "frames"},
        "packs": {"dir": "packs"}, "storage": {"data_dir": "data"},
        "web": {"port": 8123}}))
    return path


def _args(config_file, **kw):
    base = {"config": config_file, "host": None, "port": None, "data_dir": None}
    return argparse.Namespace(**{**base, **kw})


def test_run_options_override_config(config_file, tmp_path):
    config = run_cli.load(_args(config_file))
    assert config.web.host == "127.0.0.1" and config.web.port == 8123  # loopback by default
    assert config.storage.data_dir == tmp_path / "data"
    config = run_cli.load(_args(config_file, host="0.0.0.0", port=9000, data_dir=tmp_path / "d2"))
    assert (config.web.host, config.web.port) == ("0.0.0.0", 9000)
    assert config.storage.data_dir == (tmp_path / "d2").resolve()
    with pytest.raises(Exception, match="--port 70000"):
        run_cli.load(_args(config_file, port=70000))


def test_bad_config_is_a_user_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nweb: {prot: 1}\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "bad.yaml:2" in capsys.readouterr().err


def test_first_start_creates_admin_with_one_time_password(config_file, tmp_path):
    config = run_cli.load(_args(config_file))
    prepared = run_cli.prepare(config)
    try:
        assert prepared.setup_password and len(prepared.setup_password) >= 12
        users = UserStore.in_data_dir(tmp_path / "data")
        admin = users.get(run_cli.SETUP_USER)
        assert admin.role is Role.ADMIN and admin.must_change_password
        assert users.authenticate("admin", prepared.setup_password) is not None
        banner = run_cli.setup_banner(prepared.setup_password, "http://127.0.0.1:8123/")
        assert prepared.setup_password in banner and "one-time" in banner
        assert prepared.app.test_client().get("/healthz").status_code == 200
        purger = prepared.app.extensions["atopiscan"].purger  # retention runs from the start
        deadline = time.monotonic() + 10
        while purger.last is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert purger.last is not None and purger.last.error is None
        purger.stop()
    finally:
        prepared.service.close()
    again = run_cli.prepare(config)  # users exist now: no new password, nothing printed
    again.service.close()
    assert again.setup_password is None


def test_loopback_detection():
    assert run_cli.is_loopback("127.0.0.1") and run_cli.is_loopback("localhost")
    assert run_cli.is_loopback("::1")
    assert not run_cli.is_loopback("0.0.0.0") and not run_cli.is_loopback("192.168.1.5")


def test_adduser_password_stdin(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    assert main(["adduser", "nurse1", "--role", "staff", "--data-dir", str(tmp_path),
                 "--password-stdin"]) == 0
    assert "added staff user nurse1" in capsys.readouterr().out
    users = UserStore.in_data_dir(tmp_path)
    assert users.authenticate("nurse1", "a-good-password").role is Role.STAFF
    monkeypatch.setattr("sys.stdin", io.StringIO("another-password\n"))
    assert main(["adduser", "nurse1", "--role", "admin", "--data-dir", str(tmp_path),
                 "--password-stdin"]) == 2
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["adduser", "bob", "--role", "staff", "--data-dir", str(tmp_path),
                 "--password-stdin"]) == 2
    assert "too short" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["adduser", "bob", "--role", "doctor", "--data-dir", str(tmp_path)])


def test_adduser_without_terminal_needs_password_stdin(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["adduser", "bob", "--role", "staff", "--data-dir", str(tmp_path)]) == 2
    assert "--password-stdin" in capsys.readouterr().err


def test_adduser_reads_data_dir_from_config(config_file, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("tech-password-1\n"))
    assert main(["adduser", "tech1", "--role", "technician", "--config", str(config_file),
                 "--password-stdin"]) == 0
    assert UserStore.in_data_dir(tmp_path / "data").get("tech1").role is Role.TECHNICIAN


def test_a_busy_port_is_one_clear_line(config_file, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["run", "--config", str(config_file), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_sigterm_stops_the_service_cleanly(config_file):
    """systemd's stop: the process leaves through its clean-up path and exits 0."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "device", "run", "--config", str(config_file),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the service did not come up"
                time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopping (signal 15)" in output
