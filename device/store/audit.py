"""The audit log: who did what with patient data, and when (e.g. each data export).

One JSON object a line in ``audit.jsonl`` in the data dir, appended and fsynced
(a lost line would be a gap in the record). Patient data stays on the device;
this file says when some of it left, by whose hand.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"


class AuditAction:
    """The actions recorded (constants, so a reader can filter on them)."""

    DATA_EXPORT = "data_export"
    #: Work folders of killed exports removed (device.export.work): how many, how large.
    EXPORT_CLEANUP = "export_cleanup"


@dataclass(frozen=True)
class AuditEntry:
    at: str
    action: str
    user: str
    role: str | None = None
    details: dict = field(default_factory=dict)


class AuditLog:
    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir).expanduser() / AUDIT_FILE
        self._lock = threading.Lock()

    def record(self, action: str, user: str, role: str | None = None, *,
               details: dict | None = None, at: dt.datetime | None = None) -> AuditEntry:
        when = (at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        entry = AuditEntry(when.isoformat(timespec="seconds"), action, user, role, details or {})
        line = json.dumps(asdict(entry), sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        log.info("audit: %s by %s (%s)", action, user, role or "-")
        return entry

    def entries(self, action: str | None = None) -> list[AuditEntry]:
        """Every entry, oldest first (a torn last line from a power cut is skipped)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = AuditEntry(**json.loads(line))
            except (ValueError, TypeError):
                log.warning("%s: skipped an unreadable line", self.path)
                continue
            if action is None or entry.action == action:
                out.append(entry)
        return out
