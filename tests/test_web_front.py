"""The HTTPS front (device.web.tlsfront, issue 27 item 2): an idle socket, byte-drip
sockets and slow-header TLS clients do not stall anyone else; handshake and header
timeouts end them; one address holds a bounded number of connections; plain HTTP on the
HTTPS port gets a redirect; the app sees the client's address, not the front's."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

import pytest
import requests

from device.config import ServerLimits
from device.web.serve import make_server
from device.web.tls import make_self_signed
from device.web.tlsfront import PeerMap

#: Seconds a normal request may take before it counts as stalled (cheroot stalled ~30 s).
STALLED_S = 8


def _app(environ, start_response):
    body = f"ok {environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def front(tmp_path):
    """A factory: (base url, certificate path) of a served front with the given limits."""
    started = []

    def start(**limits):
        from device.web.tls import TlsSetup

        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        if not cert.exists():
            make_self_signed(cert, key, host="127.0.0.1", device_name="x")
        srv = make_server(_app, "127.0.0.1", 0, TlsSetup(cert, key, "", True, ""),
                          ServerLimits(**limits))
        thread = threading.Thread(target=srv.serve, daemon=True)
        thread.start()
        started.append((srv, thread))
        return f"https://127.0.0.1:{srv.port}", cert, srv.port

    yield start
    for srv, thread in started:
        srv.stop()
        thread.join(5)


def _tls_client(port: int) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=STALLED_S))


def test_idle_drip_and_slow_header_clients_do_not_stall_others(front):
    base, cert, port = front()
    with contextlib.ExitStack() as held:
        held.enter_context(socket.create_connection(("127.0.0.1", port)))  # never handshakes
        for _ in range(3):  # a TLS ClientHello's first bytes, then nothing yet
            drip = held.enter_context(socket.create_connection(("127.0.0.1", port)))
            drip.sendall(b"\x16\x03")
        for _ in range(20):  # handshake done, header never finished
            slow = held.enter_context(_tls_client(port))
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            resp = requests.get(f"{base}/healthz", verify=str(cert), timeout=STALLED_S)
            assert resp.status_code == 200 and resp.text == "ok 127.0.0.1 https"


def test_timeouts_end_idle_and_slow_header_clients(front):
    _, _, port = front(handshake_timeout_s=0.5, header_timeout_s=0.5)
    with socket.create_connection(("127.0.0.1", port), timeout=STALLED_S) as idle:
        assert idle.recv(1) == b""  # closed by the front, not left hanging
    with _tls_client(port) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\n")
        assert slow.recv(100).startswith(b"HTTP/1.1 408 ")


def test_one_address_holds_a_bounded_number_of_connections(front):
    base, cert, port = front(max_connections_per_client=3)
    with contextlib.ExitStack() as held:
        for _ in range(3):
            held.enter_context(socket.create_connection(("127.0.0.1", port)))
        with (socket.create_connection(("127.0.0.1", port), timeout=STALLED_S) as extra,
              contextlib.suppress(ConnectionResetError)):
            assert extra.recv(1) == b""  # closed at once
    # once they are gone (the front sees each end on its event loop), the address is
    # served again
    for _ in range(50):
        try:
            if requests.get(f"{base}/healthz", verify=str(cert), timeout=STALLED_S).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        raise AssertionError("the address was not served again after its connections closed")


def test_plain_http_on_the_https_port_is_redirected(front):
    _, _, port = front()
    with socket.create_connection(("127.0.0.1", port), timeout=STALLED_S) as plain:
        plain.sendall(f"GET /scan?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        reply = plain.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 301 ")
    assert f"Location: https://127.0.0.1:{port}/scan?x=1\r\n" in reply


def test_the_app_sees_the_client_address_and_no_header_changes_it():
    peers = PeerMap()
    app = peers.wsgi(_app)
    peers.add(50123, "192.168.1.40")
    seen = []

    def call(port: int, **extra: str) -> str:
        environ = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": str(port),
                   "wsgi.url_scheme": "https", **extra}
        return b"".join(app(environ, lambda *a: seen.append(a))).decode()

    assert call(50123) == "ok 192.168.1.40 https"
    assert call(50124, HTTP_X_FORWARDED_FOR="10.0.0.9") == "ok 127.0.0.1 https"
    peers.drop(50123)
    assert call(50123) == "ok 127.0.0.1 https"
