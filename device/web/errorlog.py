"""Recent errors for the status page: a logging handler that keeps the last N
warnings and errors in memory (a ring buffer), newest last."""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_handler: RingBufferHandler | None = None


class RingBufferHandler(logging.Handler):
    def __init__(self, capacity: int = 50, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._records: collections.deque[dict[str, str]] = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({record.exc_info[0].__name__}: {record.exc_info[1]})"
        when = dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
        self._records.append({
            "time": when.isoformat(timespec="seconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message[:500],
        })

    def records(self) -> list[dict[str, str]]:
        return list(self._records)

    def clear(self) -> None:
        self._records.clear()


def install(capacity: int = 50) -> RingBufferHandler:
    """Attach one shared handler to the root logger (idempotent) and return it."""
    global _handler
    with _lock:
        if _handler is None:
            _handler = RingBufferHandler(capacity)
            logging.getLogger().addHandler(_handler)
        return _handler
