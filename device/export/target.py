"""Where an export may be written: the checks made before anything is opened or written.

An export's ``out`` is refused (``ExportError``, one sentence a person can act on) when
it is, holds or sits inside the data folder or another protected folder (the packs),
symlinks resolved, whatever ``--force`` says; when it holds a scan store (a backup
copy, another device's data); when it is in /proc, /sys or /dev; when its name is too
long for the disk once the work suffix is added; and when it is a file, or a non-empty
folder without ``--force``. The one exception is the dashboard's own work folder
(``DATA/.exports/<name>``), which holds only exports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from device.core.errors import Conflict, InvalidInput, NotFound
from device.export.work import WORK_DIR, partial_path
from device.store.db import DB_NAME


class ExportError(InvalidInput):
    """The export cannot be made; the message says why and what to do."""


class OutputNotEmptyError(ExportError, Conflict):
    """The output folder holds files already (give --force to replace them)."""


class ProtectedOutputError(ExportError):
    """The output is, holds or sits inside a folder of patient data or model packs."""


class NothingToExportError(ExportError, NotFound):
    """No scan matches (e.g. none reviewed yet)."""


#: Kernel file systems that hold no files of their own: never an export target.
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _check_out(out: Path, force: bool, protected: Mapping[str, Path], work_dir: Path) -> None:
    refuse_protected(out, protected, work_dir)
    real = out.resolve()
    system = next((f for f in SYSTEM_FOLDERS if real.is_relative_to(f)), None)
    if system is not None:
        raise ExportError(f"{out} is in {system}, the kernel's own file system, not a disk; "
                          "choose a folder on a disk")
    longest = name_max(out.parent) - len(partial_path(Path("x")).name) + 1
    if len(out.name.encode()) > longest:
        raise ExportError(f"the folder name {out.name[:40]}... is too long for an export: "
                          f"{len(out.name.encode())} bytes, at most {longest}")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; give a folder for the export")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputNotEmptyError(f"{out} is not empty; choose a new folder, or give --force to "
                             "replace what is there")
    store_file = _store_inside(out) if out.is_dir() else None
    if store_file is not None:  # another device's data, a backup copy: never replaced
        raise ProtectedOutputError(
            f"{out} holds a scan store ({store_file}); an export never writes over one (with or "
            "without --force): choose a folder outside it")


def _store_inside(folder: Path, depth: int = 2) -> Path | None:
    """A scan store database in ``folder`` or up to ``depth`` folder levels below it."""
    level = [folder]
    for _ in range(depth + 1):
        for path in level:
            if (path / DB_NAME).is_file():
                return path / DB_NAME
        level = [p for path in level for p in _subfolders(path)]
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def check_target(out: Path, *, data_dir: Path, force: bool = False,
                 protected: Mapping[str, Path] | None = None) -> Path:
    """Refuse ``out`` (ExportError) before anything is opened or written: a folder of
    patient data or packs, a system folder, a name too long, a non-empty folder without
    ``force``. Returns ``out`` as an absolute path. ``export_dataset`` checks again."""
    out = Path(out).expanduser().absolute()
    guarded = {"data": Path(data_dir), **(protected or {})}
    _check_out(out, force, guarded, Path(data_dir) / WORK_DIR)
    return out


def name_max(folder: Path) -> int:
    """The longest file name the disk holding ``folder`` (or its nearest parent) allows."""
    for candidate in (folder, *folder.parents):
        try:
            return os.pathconf(candidate, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return 255


def refuse_protected(out: Path, protected: Mapping[str, Path], work_dir: Path) -> None:
    """Raise ProtectedOutputError when ``out`` (symlinks resolved) is, holds or is inside
    one of ``protected`` (label -> folder); strictly inside ``work_dir`` is allowed."""
    real = out.resolve()
    work = work_dir.expanduser().resolve()
    if real != work and real.is_relative_to(work):
        return
    for label, folder in protected.items():
        guarded = folder.expanduser().resolve()
        if real == guarded:
            how = "is"
        elif guarded.is_relative_to(real):
            how = "holds"
        elif real.is_relative_to(guarded):
            how = "is inside"
        else:
            continue
        raise ProtectedOutputError(
            f"{out} {how} the {label} folder {guarded}; an export never writes over it (with or "
            "without --force): choose a folder outside it")
