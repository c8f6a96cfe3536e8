"""The live preview over HTTP, on waitress with the dashboard's own server options:
login required, frames counted on the stream at the rate the capture thread
publishes, two viewers at once, a stalled client that does not slow a fast one,
a camera that vanishes and returns, and the hint events."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from web_support import (
    FAST_HASH,
    PASSWORD,
    UnpluggableCamera,
    fake_models,
    login,
    make_config,
)

from device.cameras import RetryingCamera, SyntheticCamera
from device.scan.service import Service
from device.store import Store
from device.tools.streamclient import count_frames, read_events
from device.web import create_app
from device.web.users import UserStore


@pytest.fixture
def served(tmp_path):
    """(base url, session cookie of a staff user, the app, the raw camera)."""
    from waitress.server import create_server

    from device.cli.run import server_options

    config = make_config(tmp_path)
    raw = UnpluggableCamera(SyntheticCamera(640, 480, seed=1))
    camera = RetryingCamera(raw, retry_seconds=0.1, name="test camera")
    users = UserStore.in_data_dir(config.storage.data_dir, hash_method=FAST_HASH)
    users.add("nurse", PASSWORD, "staff")
    app = create_app(config, service=Service(config, camera, fake_models()),
                     store=Store(config.storage.data_dir), users=users)
    client = app.test_client()
    assert login(client, "nurse").status_code == 302
    cookie = f"atopiscan_session={client.get_cookie('atopiscan_session').value}"
    app.config["TEST_CLIENT"] = client
    srv = create_server(app, host="127.0.0.1", port=0, **server_options())
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}", cookie, app, raw
    app.extensions["atopiscan"].scans.close()
    srv.close()
    thread.join(5)


def _hub(app):
    return app.extensions["atopiscan"].scans.hub()


def test_the_stream_needs_a_login(tmp_path):
    from web_support import make_app

    client = make_app(tmp_path).test_client()
    for path in ("/scan/stream.mjpg", "/scan/hints"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.location
        assert b"\xff\xd8" not in resp.data


def test_an_open_stream_ends_when_its_login_ends(served, monkeypatch):
    from web_support import csrf_token

    from device.web import stream

    monkeypatch.setattr(stream, "SESSION_CHECK_S", 0.2)
    base, cookie, app, raw = served
    result = {}
    reader = threading.Thread(target=lambda: result.update(
        count=count_frames(f"{base}/scan/stream.mjpg", cookie, 30.0)))
    reader.start()
    assert _until(lambda: app.extensions["atopiscan"].scans.hub_started is not None
                  and _hub(app).stats().frames > 3)
    client = app.config["TEST_CLIENT"]
    started = time.monotonic()
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).status_code == 302
    reader.join(10)
    assert not reader.is_alive() and time.monotonic() - started < 5  # not the 30 s asked
    assert _until(lambda: _hub(app).stats().viewers == 0)


def test_frames_arrive_at_the_rate_the_camera_thread_publishes(served):
    base, cookie, app, raw = served
    count = count_frames(f"{base}/scan/stream.mjpg", cookie, 3.0, warmup=0.5)
    assert count.jpeg_ok and set(count.states) == {"live"} and count.frames > 3
    # the frames counted are the ones the capture thread published over that time: a
    # fast viewer misses (almost) none of them (X-Frame-Seq counts them at the source),
    # so frames counted / seconds is the capture's rate. The bench measures the rate.
    published = count.seqs[-1] - count.seqs[0]
    assert count.seqs == sorted(set(count.seqs))
    assert count.frames >= 0.7 * published, (count.frames, published)
    assert count.frames == len(count.seqs) - 1  # the first frame only starts the clock


def test_two_viewers_at_once_share_one_capture(served):
    base, cookie, app, raw = served
    counts = [None, None]

    def view(i):
        counts[i] = count_frames(f"{base}/scan/stream.mjpg", cookie, 2.0, warmup=0.5)

    threads = [threading.Thread(target=view, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    assert _until(lambda: app.extensions["atopiscan"].scans.hub_started is not None
                  and _hub(app).stats().viewers == 2)
    for t in threads:
        t.join(15)
    a, b = counts
    assert a.frames > 3 and b.frames > 3 and a.jpeg_ok and b.jpeg_ok
    # both saw the same frames (one capture), each (almost) all of those published
    assert set(a.seqs) & set(b.seqs)
    for view in (a, b):
        assert view.frames >= 0.7 * (view.seqs[-1] - view.seqs[0]), view.seqs
    # the camera was read once per published frame, not once per viewer
    assert raw.reads <= _hub(app).stats().frames + 1


def test_a_stalled_client_does_not_slow_the_others(served):
    base, cookie, app, raw = served
    count_frames(f"{base}/scan/stream.mjpg", cookie, 0.5)  # the capture is running
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
    stalled.sendall(f"GET /scan/stream.mjpg HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
                    .encode())
    try:
        time.sleep(1.5)  # it reads nothing: its buffers fill up and its writes block
        result = {}
        reader = threading.Thread(target=lambda: result.update(
            count=count_frames(f"{base}/scan/stream.mjpg", cookie, 2.0, warmup=0.3)))
        reader.start()
        assert _until(lambda: _hub(app).stats().viewers == 2)
        time.sleep(0.3)
        before = _hub(app).stats().frames
        reader.join(15)
        published = _hub(app).stats().frames - before
        assert _hub(app).stats().viewers >= 1  # the stalled one is still connected
    finally:
        stalled.close()
    shared = result["count"]
    # the capture did not wait for the stalled client, and the other got its frames
    assert published >= 10, published
    assert shared.frames >= 0.8 * published * shared.seconds / 2.0 - 2, (shared.frames, published)


def test_a_camera_that_vanishes_and_returns_mid_stream(served):
    base, cookie, app, raw = served
    result = {}
    reader = threading.Thread(target=lambda: result.update(
        count=count_frames(f"{base}/scan/stream.mjpg", cookie, 3.0)))
    reader.start()
    assert _until(lambda: app.extensions["atopiscan"].scans.hub_started is not None
                  and _hub(app).stats().frames > 3)
    raw.present = False
    time.sleep(1.0)
    raw.present = True
    reader.join(15)
    states = result["count"].states
    lost = states.index("camera_lost")
    assert "live" in states[:lost] and "live" in states[lost:]  # live, lost, live again
    assert result["count"].jpeg_ok  # the lost state is a frame too (it says so)


def test_hint_events_carry_the_hints_and_the_crop_square(served):
    base, cookie, app, raw = served
    events = read_events(f"{base}/scan/hints", cookie, 2.0)
    live = [e for e in events if e["state"] == "live" and e.get("measures")]
    assert len(live) >= 3, events
    assert all(len(e["box"]) == 4 and 0 <= e["box"][0] < 1 for e in live)
    # the synthetic camera draws a new lesion at every frame: it never holds still
    assert any(h["code"] == "hold_still" for e in live[1:] for h in e["hints"])


def _until(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_bench_stream_prints_its_figures_and_the_pause():
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-m", "device", "bench-stream", "--seconds", "1",
                          "--viewers", "1"], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "viewers=1: each viewer" in out.stdout and "hints" in out.stdout
    assert "no viewers: capture 0.0 frames/s" in out.stdout  # the preview paused
    bad = subprocess.run([sys.executable, "-m", "device", "bench-stream", "--viewers", "x"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "--viewers" in bad.stderr and "Traceback" not in bad.stderr


def _open_stream(base: str, cookie: str, path: str = "/scan/stream.mjpg") -> tuple[socket.socket, bytes]:
    """A raw stream connection and its status line plus headers (a stream's body left
    unread; a 503's read whole)."""
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    if head.startswith(b"HTTP/1.1 503 "):  # a short answer: read all of it
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(head.split(b"\r\n\r\n", 1)[1]) < length:
            head += sock.recv(4096)
    return sock, head


def test_sixteen_streams_from_one_login_leave_pages_answering(served):
    """Issue 27 item 3: streams past web.limits get 503 with the reason, and /healthz and
    the pages still answer (before the caps, 16 streams held all 16 threads)."""
    import requests

    base, cookie, app, raw = served
    limits = app.extensions["atopiscan"].config.web.limits
    socks = []
    try:
        heads = []
        for i in range(16):
            sock, head = _open_stream(base, cookie, "/scan/hints" if i % 2 else
                                      "/scan/stream.mjpg")
            socks.append(sock)
            heads.append(head)
        ok = [h for h in heads if h.startswith(b"HTTP/1.1 200 ")]
        refused = [h for h in heads if h.startswith(b"HTTP/1.1 503 ")]
        assert len(ok) == limits.max_streams_per_session and len(refused) == 16 - len(ok)
        assert b"Retry-After: 10\r\n" in refused[0]
        assert b"max_streams_per_session" in refused[0]
        assert requests.get(f"{base}/healthz", timeout=8).status_code == 200
        assert requests.get(f"{base}/scan", headers={"Cookie": cookie}, timeout=8).ok
    finally:
        for sock in socks:
            sock.close()
    from device.web.stream import _SLOTS_KEY

    slots = app.extensions[_SLOTS_KEY]
    for _ in range(300):  # the server notices a closed socket at its next frame or hint
        if slots.open_count() == 0:
            break
        time.sleep(0.1)
    assert slots.open_count() == 0


def test_stream_slots_cap_per_login_and_in_all():
    from device.web.streamslots import StreamLimitError, StreamSlots

    slots = StreamSlots(max_streams=3, max_per_session=2)
    a1, _a2 = slots.take("a"), slots.take("a")
    with pytest.raises(StreamLimitError, match="max_streams_per_session"):
        slots.take("a")
    slots.take("b")
    with pytest.raises(StreamLimitError, match=r"3 live previews are open.*max_streams\)"):
        slots.take("c")
    a1()
    a1()  # giving back twice frees one slot, not two
    slots.take("c")
    with pytest.raises(StreamLimitError):
        slots.take("d")


def test_stream_limits_are_validated_against_the_threads(tmp_path):
    from device.config import ConfigError

    with pytest.raises(ConfigError, match="must leave 4 of the 16 threads for pages"):
        make_config(tmp_path, limits={"max_streams": 14})
    with pytest.raises(ConfigError, match="max_streams_per_session"):
        make_config(tmp_path, limits={"max_streams": 4, "max_streams_per_session": 5})
