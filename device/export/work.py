"""What a killed export leaves behind, found and removed at the next export and at
service start (issue 27: half-written copies of patient data must not pile up).

An export writes into work folders: ``.OUT.partial-XXXXXXXX`` beside its ``--out``
(and ``.OUT.old-XXXXXXXX`` while it replaces an old export), and for a dashboard
download everything under ``DATA/.exports/``. Before it makes any of them it
*holds* them: one small ledger file in ``DATA/.exports/.inflight/`` lists the paths
and stays ``flock``-ed while the export runs. The kernel drops the lock when the
process dies, however it dies, so a sweep knows a dead export's work from a live
one's without guessing from ages or process ids:

- ledger entries nobody holds: their listed paths are removed, then the entry;
- anything else in ``DATA/.exports/`` that no live entry lists (leftovers of older
  versions, or of a kill between two steps);
- beside an ``--out``: ``.OUT.partial-*`` / ``.OUT.old-*`` folders no live entry lists.

Only names this module makes are ever removed: a listed path whose name is not an
export work name, and is not inside ``DATA/.exports/``, is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from device.store.audit import AuditAction, AuditLog

log = logging.getLogger(__name__)

#: The dashboard's work folder in the data dir (downloads are exported into it).
WORK_DIR = ".exports"
#: The ledger of exports in progress, inside WORK_DIR.
LEDGER_DIR = ".inflight"
_WORK_NAME = re.compile(r"^\..+\.(partial|old)-[0-9a-f]{8}$")


def partial_path(out: Path) -> Path:
    """Where an export to ``out`` is written before it is renamed into place."""
    return out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")


def old_path(out: Path) -> Path:
    """Where a replaced export waits until the new one is in place."""
    return out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")


@dataclass(frozen=True)
class Swept:
    """What a sweep removed: the paths and their size on disk."""

    paths: tuple[str, ...] = ()
    bytes: int = 0

    @property
    def count(self) -> int:
        return len(self.paths)


class ExportWork:
    """The work folders of exports for the store in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.work_dir = Path(data_dir).expanduser().resolve() / WORK_DIR
        self.ledger = self.work_dir / LEDGER_DIR

    @contextlib.contextmanager
    def hold(self, *paths: Path) -> Iterator[None]:
        """Mark ``paths`` as an export's live work until the block ends (or the process dies)."""
        fd, entry = self._enter([str(Path(p).resolve()) for p in paths])
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
            os.close(fd)

    def _enter(self, paths: list[str], tries: int = 3) -> tuple[int, Path]:
        self.ledger.mkdir(parents=True, exist_ok=True)
        for attempt in range(tries):
            name = uuid.uuid4().hex
            staging, entry = self.ledger / f".{name}.new", self.ledger / f"{name}.json"
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # locked before a sweep can see it as an entry
                os.write(fd, json.dumps(paths).encode("utf-8"))
                os.fsync(fd)
                os.replace(staging, entry)
                return fd, entry
            except FileNotFoundError:  # a sweep took the unlocked staging file: again
                os.close(fd)
                if attempt == tries - 1:
                    raise
            except BaseException:
                os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    staging.unlink()
                raise
        raise AssertionError("unreachable")

    def sweep(self, beside: Path | None = None) -> Swept:
        """Remove dead exports' work (and, with ``beside``, stale work folders next to it)."""
        removed: list[str] = []
        held: set[str] = set()
        total = 0
        if self.ledger.is_dir():
            for entry in sorted(self.ledger.iterdir()):
                paths, live = _read_entry(entry)
                if live:
                    held.update(paths)
                    continue
                for path in paths:
                    total += self._remove(Path(path), removed)
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
        if self.work_dir.is_dir():
            for item in sorted(self.work_dir.iterdir()):
                if item.name != LEDGER_DIR and str(item) not in held:
                    total += self._remove(item, removed)
        beside = beside.parent.resolve() / beside.name if beside is not None else None
        if beside is not None and beside.parent.is_dir():
            for item in sorted(beside.parent.glob(f".{glob_escape(beside.name)}.*-*")):
                if _WORK_NAME.match(item.name) and str(item) not in held:
                    total += self._remove(item, removed)
        if removed:
            log.warning("removed %d work folders of interrupted exports (%d bytes)",
                        len(removed), total)
        return Swept(tuple(removed), total)

    def _remove(self, path: Path, removed: list[str]) -> int:
        inside = path.is_relative_to(self.work_dir) and path != self.work_dir
        if not (inside or _WORK_NAME.match(path.name)) or not os.path.lexists(path):
            return 0
        size = _size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if not os.path.lexists(path):
            removed.append(str(path))
            return size
        return 0


def sweep_and_audit(data_dir: Path, who: str, beside: Path | None = None) -> Swept:
    """Sweep, and when anything was removed say so (how many, how large) in the audit log."""
    swept = ExportWork(data_dir).sweep(beside)
    if swept.count:
        AuditLog(data_dir).record(AuditAction.EXPORT_CLEANUP, who, details={
            "removed": swept.count, "bytes": swept.bytes, "paths": list(swept.paths)})
    return swept


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _read_entry(entry: Path) -> tuple[list[str], bool]:
    """The paths an entry lists and whether a live export holds it."""
    try:
        fd = os.open(entry, os.O_RDONLY)
    except FileNotFoundError:
        return [], True  # its export just finished
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            live = True
        else:
            live = False
        raw = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    try:
        paths = json.loads(raw or b"[]")
    except ValueError:
        paths = []
    return [p for p in paths if isinstance(p, str)], live


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
