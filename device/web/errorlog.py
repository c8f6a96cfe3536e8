"""Recent errors for the status page: a logging handler that keeps the last N
warnings and errors in memory (a ring buffer), newest last.

One fault often logs the same warning many times in a burst (a camera folder
that vanished logs one "skipping FILE" per file). Such repeats, the same logger,
level and message template within ``REPEAT_WINDOW_S`` of the last one, are
folded into one line with a count, so a burst cannot push older errors out.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_handler: RingBufferHandler | None = None

#: Repeats of one message template closer together than this fold into one line.
REPEAT_WINDOW_S = 60.0


def _iso(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ErrorLine:
    """One line of the list: a message and how often it came (``count``), first and last."""

    key: tuple[str, str, str]  # logger, level, message template
    level: str
    logger: str
    message: str  # the latest occurrence's text
    first: float
    last: float
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"time": _iso(self.last), "first": _iso(self.first), "level": self.level,
                "logger": self.logger, "message": self.message, "count": self.count}


class RingBufferHandler(logging.Handler):
    def __init__(self, capacity: int = 50, level: int = logging.WARNING,
                 repeat_window_s: float = REPEAT_WINDOW_S) -> None:
        super().__init__(level)
        self.repeat_window_s = repeat_window_s
        self._records: collections.deque[ErrorLine] = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({record.exc_info[0].__name__}: {record.exc_info[1]})"
        key = (record.name, record.levelname, str(record.msg))
        with self.lock:  # an RLock: handle() holds it around emit() already
            for i in range(len(self._records) - 1, -1, -1):
                line = self._records[i]
                if line.key == key and record.created - line.last <= self.repeat_window_s:
                    del self._records[i]  # moves to the end: it is the newest again
                    line.count += 1
                    line.last, line.message = record.created, message[:500]
                    self._records.append(line)
                    return
            self._records.append(ErrorLine(key, record.levelname, record.name, message[:500],
                                           record.created, record.created))

    def records(self) -> list[dict[str, Any]]:
        with self.lock:  # an RLock: handle() holds it around emit() already
            return [line.to_dict() for line in self._records]

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
