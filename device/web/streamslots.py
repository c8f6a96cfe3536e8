"""How many live-preview streams may be open: per login and over all of them.

Each open stream (``/scan/stream.mjpg``, ``/scan/hints``) holds one of the server's
worker threads for as long as it is open, so without a cap sixteen streams from one
login took every thread and ``/healthz`` timed out. ``StreamSlots`` hands out at most
``web.limits.max_streams`` slots, ``max_streams_per_session`` of them to one login;
the config keeps ``max_streams`` at least 4 below the thread count, so pages and
``/healthz`` always have threads. Flask-free: the route asks for a slot and gives it
back when the server closes the response.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)


class StreamLimitError(Exception):
    """No slot: the message says which cap and what to do (served with a 503)."""


class StreamSlots:
    def __init__(self, max_streams: int, max_per_session: int) -> None:
        self.max_streams = max_streams
        self.max_per_session = max_per_session
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()

    def take(self, session_key: str) -> Callable[[], None]:
        """A slot for one stream of ``session_key``; returns the function that gives it
        back (safe to call more than once). Raises StreamLimitError."""
        with self._lock:
            if self._open[session_key] >= self.max_per_session:
                raise StreamLimitError(
                    f"this login already has {self.max_per_session} live previews open "
                    "(web.limits.max_streams_per_session): close another tab or window "
                    "showing the scan page and reload")
            total = sum(self._open.values())
            if total >= self.max_streams:
                log.warning("live preview refused: %d streams open (web.limits.max_streams)",
                            total)
                raise StreamLimitError(
                    f"{self.max_streams} live previews are open on this device "
                    "(web.limits.max_streams): try again when someone closes theirs")
            self._open[session_key] += 1
        given_back = threading.Event()

        def give_back() -> None:
            with self._lock:
                if given_back.is_set():
                    return
                given_back.set()
                self._open[session_key] -= 1
                if self._open[session_key] <= 0:
                    del self._open[session_key]

        return give_back

    def open_count(self, session_key: str | None = None) -> int:
        with self._lock:
            return sum(self._open.values()) if session_key is None else self._open[session_key]
