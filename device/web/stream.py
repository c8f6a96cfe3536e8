"""The live preview routes (staff): ``/scan/stream.mjpg`` (MJPEG) and ``/scan/hints``
(server-sent events), both fed by the app's one PreviewHub (device.scan.preview).

Each open stream holds one server thread, so their number is capped per login and in
all (device.web.streamslots, web.limits); past a cap the answer is 503 with the reason. The
server's small output buffer makes a slow client skip frames instead of queueing
them (device.web.serve.STREAM_BUFFER_BYTES).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, current_app, session
from flask.typing import ResponseReturnValue
from werkzeug.wsgi import ClosingIterator

from device.scan.preview import PreviewHub
from device.web.auth import roles_required
from device.web.common import ctx, scans
from device.web.streamslots import StreamLimitError, StreamSlots
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("stream", __name__)

BOUNDARY = "atopiscan-frame"
#: An open stream re-checks its login this often: a logout or password change ends it.
SESSION_CHECK_S = 5.0
_SLOTS_KEY = "atopiscan.stream_slots"
#: Seconds a refused viewer is asked to wait before trying again.
RETRY_AFTER_S = 10
_hub_lock = threading.Lock()


def hub() -> PreviewHub:
    """This app's preview hub (device.scan.session.ScanSession.hub)."""
    return scans().hub()


def login_check() -> Callable[[], bool]:
    """Whether the request's login still holds, for a stream that outlives its request:
    the session id must stay live (no logout, no password change) and the stream ends
    after the idle limit, as an untouched page's session would (the page then reloads
    to the login). Checked at most every SESSION_CHECK_S seconds."""
    sessions = current_app.extensions["atopiscan.sessions"]
    sid = session.get("sid")
    deadline = time.monotonic() + current_app.config["SESSION_MINUTES"] * 60
    state = {"next": 0.0, "ok": True}

    def check() -> bool:
        now = time.monotonic()
        if state["ok"] and now >= state["next"]:
            state["next"] = now + SESSION_CHECK_S
            state["ok"] = (isinstance(sid, str) and now < deadline
                           and sessions.user_of(sid) is not None)
            if not state["ok"]:
                log.info("a live stream ended: its login ended")
        return state["ok"]

    return check


def mjpeg_parts(preview: PreviewHub, *, wait: float = 5.0,
                allowed: Callable[[], bool] = lambda: True) -> Iterator[bytes]:
    """The multipart body: the newest frame each time one is ready (older ones are skipped
    when this client is slow). Ends when the hub closes, the login ends (``allowed``) or
    the client goes away."""
    with preview.watch() as viewer:
        yield f"--{BOUNDARY}\r\n".encode()
        while allowed():
            frame = viewer.next_frame(wait)
            if frame is None:
                if preview.closed:
                    return
                continue
            # Each part ends with the next boundary: browsers show a part only once they
            # see where it ends, so this saves a frame of latency.
            yield (f"Content-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
                   f"X-Frame-Seq: {frame.seq}\r\nX-Stream-State: {frame.state.value}\r\n\r\n"
                   ).encode() + frame.jpeg + f"\r\n--{BOUNDARY}\r\n".encode()


def hint_events(preview: PreviewHub, *, wait: float = 10.0,
                allowed: Callable[[], bool] = lambda: True) -> Iterator[bytes]:
    """Server-sent events: one ``data:`` JSON line per hint update (device.scan.preview.HintUpdate)."""
    with preview.watch() as viewer:
        yield b"retry: 2000\n\n"
        while allowed():
            update = viewer.next_hints(wait)
            if update is None:
                if preview.closed:
                    return
                yield b": keep-alive\n\n"
                continue
            yield f"data: {json.dumps(update.to_dict())}\n\n".encode()


def slots() -> StreamSlots:
    """This app's stream caps (web.limits.max_streams and max_streams_per_session)."""
    found = current_app.extensions.get(_SLOTS_KEY)
    if found is None:
        with _hub_lock:
            found = current_app.extensions.get(_SLOTS_KEY)
            if found is None:
                limits = ctx().config.web.limits
                found = StreamSlots(limits.max_streams, limits.max_streams_per_session)
                current_app.extensions[_SLOTS_KEY] = found
    return found


def _streaming(make_body: Callable[[], Iterator[bytes]], mimetype: str) -> Response:
    """The stream, if a slot is free (else 503 with the reason); the slot is given back
    when the server closes the response (the client left, the login or the hub ended)."""
    try:
        give_back = slots().take(str(session.get("sid")))
    except StreamLimitError as exc:
        log.info("live preview refused: %s", exc)
        # Plain text: an <img> or EventSource shows no error page, curl and logs show this.
        return Response(f"503 live preview not available: {exc}\n", 503, mimetype="text/plain",
                        headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"})
    try:
        # A direct_passthrough body is handed to the server as it is (Response.call_on_close
        # would never run), so the body itself gives the slot back when closed.
        body = ClosingIterator(make_body(), give_back)
    except BaseException:
        give_back()
        raise
    resp = Response(body, mimetype=mimetype, direct_passthrough=True)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream
    return resp


@bp.route("/scan/stream.mjpg")
@roles_required(Role.STAFF)
def stream() -> ResponseReturnValue:
    return _streaming(lambda: mjpeg_parts(hub(), allowed=login_check()),
                      f"multipart/x-mixed-replace; boundary={BOUNDARY}")


@bp.route("/scan/hints")
@roles_required(Role.STAFF)
def hints() -> ResponseReturnValue:
    return _streaming(lambda: hint_events(hub(), allowed=login_check()), "text/event-stream")
