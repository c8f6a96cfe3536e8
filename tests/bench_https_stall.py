"""How long a normal HTTPS request takes while hostile clients hold connections open, and
the load figures (issue 27 item 2). Loopback only, bounded loops.

    PYTHONPATH=$PWD .venv/bin/python tests/bench_https_stall.py [--rounds 20] [--load]

Serves the real dashboard (fake models) with ``device.web.serve.make_server`` over
HTTPS, then times ``GET /healthz``, ``GET /login`` and a whole login (``POST /login``,
the default password hash) on fresh connections (a new TLS handshake each): first with
nobody else connected, then while these are held open (each reopened when the server
drops it, as an attacker would):

- 1 idle socket that never starts its TLS handshake;
- 3 byte-drip sockets sending a real ClientHello one byte a second;
- 20 slow-header TLS clients: handshake done, a header started and never finished.

``--load`` adds 2,000 requests over plain HTTP (16 clients) and 500 over HTTPS (8 clients)
to a logged-in page mix, and counts the errors.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from web_support import FAST_HASH, PASSWORD, fake_models, make_config  # noqa: E402

from device.cameras import RetryingCamera, SyntheticCamera  # noqa: E402
from device.scan.service import Service  # noqa: E402
from device.store import Store  # noqa: E402
from device.web import create_app  # noqa: E402
from device.web.serve import make_server  # noqa: E402
from device.web.tls import ensure_certificate  # noqa: E402
from device.web.users import UserStore  # noqa: E402

PAGES = ["/healthz", "/scan", "/api/csrf", "/api/me", "/login"]


def serve(tmp: Path, https: bool):
    config = make_config(tmp)
    tls = ensure_certificate(config.web.tls, tmp / "tlsdata", host="127.0.0.1",
                             device_name="bench") if https else None
    users = UserStore.in_data_dir(config.storage.data_dir)  # the default (slow) hash
    users.add("nurse", PASSWORD, "staff")
    fast = UserStore.in_data_dir(config.storage.data_dir, hash_method=FAST_HASH)
    fast.add("loadnurse", PASSWORD, "staff")
    camera = RetryingCamera(SyntheticCamera(320, 240, seed=1), retry_seconds=0.1)
    app = create_app(config, service=Service(config, camera, fake_models()),
                     store=Store(config.storage.data_dir), users=users, tls=tls)
    srv = make_server(app, "127.0.0.1", 0, tls, config.web.limits)
    threading.Thread(target=srv.serve, daemon=True).start()
    scheme = "https" if https else "http"
    return srv, f"{scheme}://127.0.0.1:{srv.port}", (str(tls.cert) if tls else False)


def client_hello() -> bytes:
    """The first flight of a real TLS client, to drip."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False)
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server's answer
        tls.do_handshake()
    return outgoing.read()


def _hold(port: int, stop: threading.Event, act: Callable[[socket.socket], None]) -> None:
    """Keep one hostile connection open: run ``act`` on it, reconnect when dropped."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                act(sock)
        except OSError:
            time.sleep(0.2)


def hostiles(port: int, stop: threading.Event) -> list[threading.Thread]:
    hello = client_hello()
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    def idle(sock: socket.socket) -> None:
        sock.settimeout(1)
        while not stop.is_set():
            try:
                if sock.recv(1) == b"":
                    return  # dropped by the server
            except TimeoutError:
                continue

    def drip(sock: socket.socket) -> None:
        for byte in hello:
            if stop.wait(1.0):
                return
            sock.sendall(bytes([byte]))

    def slow_header(sock: socket.socket) -> None:
        with context.wrap_socket(sock) as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            idle(tls)

    threads = [threading.Thread(target=_hold, args=(port, stop, act), daemon=True)
               for act in [idle] + [drip] * 3 + [slow_header] * 20]
    for thread in threads:
        thread.start()
    return threads


def _login(session: requests.Session, base: str, user: str) -> int:
    page = session.get(f"{base}/login", timeout=60).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return session.post(f"{base}/login", allow_redirects=False, timeout=60, data={
        "username": user, "password": PASSWORD, "csrf_token": token}).status_code


def time_requests(base: str, verify, rounds: int) -> dict[str, list[tuple[float, bool]]]:
    """(milliseconds, answered right) of each request; a failure is timed too."""
    times: dict[str, list[tuple[float, bool]]] = {
        "GET /healthz": [], "GET /login": [], "POST /login": []}
    for _ in range(rounds):
        for name in times:
            with requests.Session() as s:  # a fresh connection: a new handshake each time
                s.verify, s.trust_env = verify, False
                s.headers["Referer"] = f"{base}/login"
                start = time.perf_counter()
                try:
                    if name == "POST /login":
                        ok = _login(s, base, "nurse") == 302
                    else:
                        ok = s.get(f"{base}{name.split()[1]}", timeout=60).status_code == 200
                except (requests.RequestException, AttributeError):  # AttributeError: no token
                    ok = False
                times[name].append(((time.perf_counter() - start) * 1000, ok))
    return times


def report(label: str, times: dict[str, list[tuple[float, bool]]]) -> None:
    for name, runs in times.items():
        ms = [t for t, _ in runs]
        failed = sum(not ok for _, ok in runs)
        print(f"{label}: {name:<13} median {statistics.median(ms):7.1f} ms   "
              f"max {max(ms):7.1f} ms   ({len(ms)} requests, {failed} failed)", flush=True)


def load(base: str, verify, total: int, clients: int) -> str:
    sessions = []
    for _ in range(clients):
        s = requests.Session()
        s.verify, s.trust_env = verify, False
        s.headers["Referer"] = f"{base}/login"
        assert _login(s, base, "loadnurse") == 302
        sessions.append(s)
    errors, times = [], []

    def one(i: int) -> None:
        start = time.perf_counter()
        try:
            resp = sessions[i % clients].get(f"{base}{PAGES[i % len(PAGES)]}", timeout=30)
            if resp.status_code >= 400:
                errors.append(f"{PAGES[i % len(PAGES)]} {resp.status_code}")
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)
        times.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(total)))
    wall = time.perf_counter() - start
    for s in sessions:
        s.close()
    times.sort()
    kinds = ", ".join(f"{k} x{n}" for k, n in Counter(errors).items())
    return (f"{total} requests, {clients} clients: {len(errors)} errors"
            f"{f' ({kinds})' if kinds else ''}, {wall:.1f} s "
            f"({total / wall:.0f}/s), median {statistics.median(times) * 1000:.0f} ms, "
            f"p95 {times[int(0.95 * len(times))] * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="requests of each kind")
    parser.add_argument("--load", action="store_true", help="also the 2,000 + 500 load figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        srv, base, verify = serve(Path(tmp) / "https", https=True)
        report("HTTPS, no other client", time_requests(base, verify, args.rounds))
        stop = threading.Event()
        hostiles(srv.port, stop)
        time.sleep(2)  # the hostile connections are open
        report("HTTPS, 1 idle + 3 drip + 20 slow-header held open",
               time_requests(base, verify, args.rounds))
        stop.set()
        if args.load:
            print("HTTPS load: " + load(base, verify, 500, 8))
            plain, plain_base, _ = serve(Path(tmp) / "http", https=False)
            print("HTTP load: " + load(plain_base, False, 2000, 16))
            plain.stop()
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
