"""A data export as one .tar.gz file (the dashboard's download).

The archive is as deterministic as the export folder it packs: members sorted,
owner root, mode 0644/0755, every time stamp the export time, gzip header time
zero. Work files go in a folder of the data dir (same disk, behind the login) and
are gone when the caller closes the returned file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from device.export.dataset import ExportResult, export_dataset
from device.export.rows import ExportFilter
from device.export.work import WORK_DIR, ExportWork

log = logging.getLogger(__name__)


def _tarinfo(info: tarfile.TarInfo, mtime: int) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = mtime
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def write_tarball(folder: Path, fileobj: BinaryIO, top: str, mtime: int) -> None:
    """``folder`` as ``top/...`` into a gzipped tar written to ``fileobj``."""
    with (gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0) as gz,
          tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar):
        tar.add(folder, arcname=top, recursive=False, filter=lambda i: _tarinfo(i, mtime))
        for path in sorted(folder.rglob("*")):
            arc = f"{top}/{path.relative_to(folder).as_posix()}"
            tar.add(path, arcname=arc, recursive=False, filter=lambda i: _tarinfo(i, mtime))


def export_tarball(store, flt: ExportFilter, *, name: str, device_name: str,
                   software_version: str, exported_by: str,
                   clock: Callable[[], dt.datetime] | None = None) -> tuple[BinaryIO, ExportResult]:
    """Export into a work folder, pack it, and return the open archive (its file is
    already unlinked: closing it frees the space) with the export's result."""
    when = (clock or (lambda: dt.datetime.now(dt.timezone.utc)))()
    work = Path(store.data_dir) / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    folder = work / f"{name}-{uuid.uuid4().hex[:8]}"
    with ExportWork(store.data_dir).hold(folder):
        return _export_and_pack(store, flt, folder, work, name=name, device_name=device_name,
                                software_version=software_version, exported_by=exported_by,
                                when=when)


def _export_and_pack(store, flt: ExportFilter, folder: Path, work: Path, *, name: str,
                     device_name: str, software_version: str, exported_by: str,
                     when: dt.datetime) -> tuple[BinaryIO, ExportResult]:
    try:
        result = export_dataset(store, folder, flt, device_name=device_name,
                                software_version=software_version, exported_by=exported_by,
                                clock=lambda: when)
        # Unlinked at once on POSIX; the caller (send_file) closes it when sent.
        handle = tempfile.TemporaryFile(dir=work)  # noqa: SIM115
        try:
            write_tarball(folder, handle, name, int(when.timestamp()))
            handle.flush()
            os.fsync(handle.fileno())
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return handle, result
