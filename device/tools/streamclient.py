"""A minimal reader of the dashboard's live streams, for the stream bench and the tests:
counts the JPEG frames of ``/scan/stream.mjpg`` and the events of ``/scan/hints``."""

from __future__ import annotations

import http.client
import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


@dataclass
class StreamCount:
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    states: list[str] = field(default_factory=list)  # the X-Stream-State of each frame
    seqs: list[int] = field(default_factory=list)    # the X-Frame-Seq of each frame
    jpeg_ok: bool = True                              # every part was a JPEG
    last_jpeg: bytes = b""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def _connect(url: str, cookie: str, timeout: float) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    conn.request("GET", parts.path, headers={"Cookie": cookie})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"GET {parts.path}: HTTP {resp.status}")
    return resp


def count_frames(url: str, cookie: str, seconds: float, *, warmup: float = 0.0) -> StreamCount:
    """Read the MJPEG stream at ``url`` for ``seconds`` (after ``warmup`` seconds) and count
    its frames. ``cookie``: the Cookie header of a logged-in session."""
    resp = _connect(url, cookie, timeout=10)
    count = StreamCount()
    try:
        counting_from = time.monotonic() + warmup
        first: float | None = None  # the rate is frames after the first over time since it
        while True:
            headers = {}
            line = resp.readline()
            while line in (b"\r\n", b"\n"):
                line = resp.readline()
            if not line:
                break
            while line not in (b"\r\n", b"\n", b""):
                if line.startswith(b"--"):  # the boundary before a part
                    line = resp.readline()
                    continue
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
                line = resp.readline()
            body = resp.read(int(headers.get("content-length", "0")))
            now = time.monotonic()
            if now < counting_from:
                continue
            count.states.append(headers.get("x-stream-state", ""))
            count.seqs.append(int(headers.get("x-frame-seq", "0")))
            count.jpeg_ok = count.jpeg_ok and body[:3] == b"\xff\xd8\xff"
            count.last_jpeg = body
            if first is None:
                first = now
                continue
            count.frames += 1
            count.bytes += len(body)
            if now - first >= seconds:
                count.seconds = now - first
                break
    finally:
        resp.close()
    return count


def read_events(url: str, cookie: str, seconds: float) -> list[dict]:
    """The ``data:`` events of the server-sent event stream at ``url`` for ``seconds``."""
    resp = _connect(url, cookie, timeout=10)
    events = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            line = resp.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
    finally:
        resp.close()
    return events


def _main(argv: list[str] | None = None) -> int:
    """``python -m device.tools.streamclient URL COOKIE SECONDS VIEWERS``: that many viewers at once
    (threads), each counting frames; prints one JSON list of their frames/s. The stream
    bench runs it in a child process so the viewers' CPU is not counted as the server's."""
    import sys
    import threading

    url, cookie, seconds, viewers = (argv or sys.argv[1:])[:4]
    results: list[StreamCount | None] = [None] * int(viewers)

    def view(i: int) -> None:
        results[i] = count_frames(url, cookie, float(seconds), warmup=1.0)

    threads = [threading.Thread(target=view, args=(i,)) for i in range(int(viewers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps([{"fps": r.fps, "frames": r.frames, "bytes": r.bytes} if r else None
                      for r in results]))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
