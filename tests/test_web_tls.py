"""HTTPS for the dashboard beyond loopback (issue 16): a self-signed certificate made at
first start (or the configured one), its fingerprint on the console and the status
page, Secure cookies and HSTS; loopback may stay plain HTTP."""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import stat
import subprocess
import sys
import time

import pytest
import requests
import yaml
from web_support import PASSWORD, logged_in, make_app, write_frames

from device.config import ConfigError, TlsMode, load_config
from device.web.tls import TlsError, ensure_certificate, make_self_signed
from device.web.users import Role, UserStore


def _config(tmp_path, **tls):
    write_frames(tmp_path / "frames", n=1)
    path = tmp_path / "device.yaml"
    web = {"port": 8123, **({"tls": tls} if tls else {})}
    path.write_text(yaml.safe_dump({
        "version": 1, "device_name": "ward-3", "camera": {"source": "folder", "folder": "frames"},
        "packs": {"dir": "packs"}, "storage": {"data_dir": "data"}, "web": web}))
    return path


def test_tls_is_on_beyond_loopback_and_when_asked(tmp_path):
    config = load_config(_config(tmp_path))
    assert config.web.tls.mode is TlsMode.AUTO and not config.web.uses_tls  # 127.0.0.1
    config.web.host = "0.0.0.0"
    assert config.web.uses_tls and "web: https://0.0.0.0:8123" in config.summary()
    config.web.host = "::1"
    assert not config.web.uses_tls
    assert load_config(_config(tmp_path, mode="always")).web.uses_tls


def test_cert_without_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="give both tls.cert and tls.key"):
        load_config(_config(tmp_path, cert="server.pem"))
    with pytest.raises(ConfigError, match=r"web.tls.mode"):
        load_config(_config(tmp_path, mode="never"))


def test_self_signed_made_once_and_kept(tmp_path):
    config = load_config(_config(tmp_path)).web.tls
    first = ensure_certificate(config, tmp_path / "data", host="192.168.1.20", device_name="ward-3")
    assert first.generated and first.self_signed
    assert stat.S_IMODE(first.key.stat().st_mode) == 0o600
    der = ssl.PEM_cert_to_DER_cert(first.cert.read_text())
    assert first.fingerprint_sha256 == ":".join(
        re.findall("..", hashlib.sha256(der).hexdigest().upper()))
    again = ensure_certificate(config, tmp_path / "data", host="192.168.1.20",
                               device_name="ward-3")
    assert not again.generated and again.fingerprint_sha256 == first.fingerprint_sha256
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "192.168.1.20" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]


def test_configured_pair_is_checked(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_self_signed(a / "cert.pem", a / "key.pem", host="127.0.0.1", device_name="x")
    make_self_signed(b / "cert.pem", b / "key.pem", host="127.0.0.1", device_name="x")
    ok = load_config(_config(tmp_path, cert=str(a / "cert.pem"), key=str(a / "key.pem")))
    setup = ensure_certificate(ok.web.tls, tmp_path / "data", host="0.0.0.0", device_name="x")
    assert not setup.self_signed and setup.cert == a / "cert.pem"
    assert not (tmp_path / "data" / "tls").exists()  # nothing self-made beside a configured one
    wrong = load_config(_config(tmp_path, cert=str(a / "cert.pem"), key=str(b / "key.pem")))
    with pytest.raises(TlsError, match="is not the key of"):
        ensure_certificate(wrong.web.tls, tmp_path / "data", host="0.0.0.0", device_name="x")
    (tmp_path / "junk.pem").write_text("not a certificate")
    junk = load_config(_config(tmp_path, cert=str(tmp_path / "junk.pem"), key=str(a / "key.pem")))
    with pytest.raises(TlsError, match="junk.pem: not a readable PEM certificate"):
        ensure_certificate(junk.web.tls, tmp_path / "data", host="0.0.0.0", device_name="x")


def test_bad_configured_certificate_is_exit_2(tmp_path, capsys):
    from device.__main__ import main

    (tmp_path / "junk.pem").write_text("junk")
    path = _config(tmp_path, mode="always", cert="junk.pem", key="junk.pem")
    assert main(["run", "--config", str(path), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert "junk.pem: not a readable PEM certificate" in err and "Traceback" not in err


def test_loopback_http_has_no_secure_cookie_or_hsts(tmp_path):
    app = make_app(tmp_path)
    client, _ = logged_in(app, Role.STAFF)
    resp = client.get("/scan")
    assert "Strict-Transport-Security" not in resp.headers
    assert not client.get_cookie("atopiscan_session").secure


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_https_end_to_end(tmp_path):
    """`device run` with TLS forced on 127.0.0.1: a real HTTPS request, pinned to the
    fingerprint it printed."""
    path = _config(tmp_path, mode="always")
    UserStore.in_data_dir(tmp_path / "data").add("tech", PASSWORD, Role.TECHNICIAN)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "device", "run", "--config", str(path),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"https://127.0.0.1:{port}"
    cert = tmp_path / "data" / "tls" / "cert.pem"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(f"{base}/healthz", verify=str(cert), timeout=5)
                break
            except (requests.ConnectionError, OSError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the service did not come up"
                time.sleep(0.3)
        assert health.status_code == 200
        assert health.headers["Strict-Transport-Security"].startswith("max-age=")
        # the certificate served is the one whose fingerprint the status page shows
        served = ssl.get_server_certificate(("127.0.0.1", port))
        served_fp = ":".join(re.findall("..", hashlib.sha256(
            ssl.PEM_cert_to_DER_cert(served)).hexdigest().upper()))
        with requests.Session() as s:
            s.verify, s.trust_env = str(cert), False  # no CA bundle from the environment
            s.headers["Referer"] = f"{base}/login"  # Flask-WTF checks it over HTTPS
            page = s.get(f"{base}/login").text
            token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
            resp = s.post(f"{base}/login", allow_redirects=False, data={
                "username": "tech", "password": PASSWORD, "csrf_token": token})
            assert resp.status_code == 302
            assert re.search(r"atopiscan_session=[^;]+;.*Secure", resp.headers["Set-Cookie"])
            status = s.get(f"{base}/api/status").json()
            assert status["tls"]["fingerprint_sha256"] == served_fp
            assert served_fp in s.get(f"{base}/status").text
        # plain HTTP on the HTTPS port gets no page
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = raw.recv(4096)
            except ConnectionResetError:
                answer = b""
        assert b'{"status":"ok"}' not in answer
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    assert f"atopiscan dashboard on {base}/" in output
    assert f"SHA-256 fingerprint: {served_fp}" in output
    assert "Traceback" not in output


def test_live_preview_streams_over_https(tmp_path):
    """The MJPEG preview (a long streamed response) through the HTTPS server."""
    import threading

    from web_support import FAST_HASH, fake_models, make_config

    from device.cameras import RetryingCamera, SyntheticCamera
    from device.scan.service import Service
    from device.store import Store
    from device.web import create_app
    from device.web.serve import make_server

    config = make_config(tmp_path)
    tls = ensure_certificate(config.web.tls, tmp_path / "tlsdata", host="127.0.0.1",
                             device_name="x")
    users = UserStore.in_data_dir(config.storage.data_dir, hash_method=FAST_HASH)
    users.add("nurse", PASSWORD, "staff")
    camera = RetryingCamera(SyntheticCamera(640, 480, seed=1), retry_seconds=0.1)
    app = create_app(config, service=Service(config, camera, fake_models()),
                     store=Store(config.storage.data_dir), users=users, tls=tls)
    srv = make_server(app, "127.0.0.1", 0, tls, config.web.limits)
    assert srv.https
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    base = f"https://127.0.0.1:{srv.port}"
    try:
        with requests.Session() as s:
            s.verify, s.trust_env = str(tls.cert), False
            s.headers["Referer"] = f"{base}/login"
            page = s.get(f"{base}/login").text
            token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
            assert s.post(f"{base}/login", allow_redirects=False, data={
                "username": "nurse", "password": PASSWORD, "csrf_token": token}).status_code == 302
            frames, start = 0, time.monotonic()
            with s.get(f"{base}/scan/stream.mjpg", stream=True, timeout=10) as resp:
                assert resp.status_code == 200
                for chunk in resp.iter_content(65536):
                    frames += chunk.count(b"\xff\xd8\xff")
                    if frames >= 3 or time.monotonic() - start > 8:
                        break
        assert frames >= 3
    finally:
        app.extensions["atopiscan"].scans.close()
        srv.stop()
        thread.join(5)
