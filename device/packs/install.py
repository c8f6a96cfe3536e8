"""Install, roll back and list model packs.

Layout of the packs folder (config ``packs.dir``)::

    store/<pack_version>-<manifest sha256[:12]>/   verified, extracted packs
    store/.staging-*/                              an install in progress
    current  -> store/<id>                         the pack the device runs
    previous -> store/<id>                         what ``rollback`` returns to
    .lock                                          one install/rollback at a time

An install verifies the pack *while extracting it into staging on the same
filesystem* (device.packs.check), so what was checked is exactly what runs; it then
renames staging into store/ and switches ``current`` atomically (a new symlink made
beside it and ``os.replace``'d over it). Until that rename, the running pack is
untouched; any failure removes staging. A power cut leaves either the old or the
new link, never a missing one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import device
from device.core.atomic import fsync_dir
from device.core.card import CardError, load_card
from device.core.vocab import Sign
from device.packs.check import VerifyReport, load_public_key, verify_into, verify_pack
from device.packs.manifest import (
    MANIFEST_NAME,
    ManifestError,
    read_manifest,
    sha256_file,
)

log = logging.getLogger(__name__)

__all__ = ["InstallError", "InstalledPack", "PackInfo", "current_pack_dir", "install_pack",
           "list_packs", "load_public_key", "rollback", "verify_pack", "VerifyReport"]

STORE = "store"
CURRENT = "current"
PREVIOUS = "previous"
INSTALL_INFO = ".installed.json"
STAGING_PREFIX = ".staging-"
#: Packs kept on disk, current and previous included; older ones are deleted.
KEEP_PACKS = 3
#: Free space an install needs: the extracted pack (a plain tar, so about the file's
#: size) times this, plus SPACE_RESERVE left over so the scans that follow still fit.
SPACE_FACTOR = 1.25
SPACE_RESERVE = 64 * 1024 * 1024


class InstallError(Exception):
    """A pack was refused or a switch could not be made; ``problems`` lists why."""

    def __init__(self, message: str, problems: list[str] | None = None,
                 report: VerifyReport | None = None) -> None:
        self.problems = problems or [message]
        self.report = report
        super().__init__(message if not problems else message + "\n" + "\n".join(
            f"  - {p}" for p in problems))


class NotEnoughSpaceError(InstallError):
    """The packs folder's disk has too little free space for the pack: nothing changed."""

    def __init__(self, message: str, *, needed: int, free: int) -> None:
        self.needed, self.free = needed, free
        super().__init__(message)


def space_needed(pack_bytes: int) -> int:
    """Free bytes an install of a ``pack_bytes`` pack file needs (see SPACE_FACTOR)."""
    return int(pack_bytes * SPACE_FACTOR) + SPACE_RESERVE


def check_space(pack_file: Path, packs_dir: Path) -> None:
    """Refuse (NotEnoughSpaceError) before anything is extracted when the disk is short."""
    needed = space_needed(pack_file.stat().st_size)
    free = shutil.disk_usage(packs_dir).free
    if free < needed:
        mib = 1024 * 1024
        raise NotEnoughSpaceError(
            f"{pack_file}: not enough free disk space to install it in {packs_dir} "
            f"({free // mib} MiB free, {-(-needed // mib)} MiB needed); nothing changed. "
            "Free space (delete old exports or kept images) and try again",
            needed=needed, free=free)


@dataclass(frozen=True)
class InstalledPack:
    id: str
    version: str
    dir: Path
    installed: str
    report: VerifyReport | None = None


@dataclass
class PackInfo:
    id: str
    version: str | None
    dir: Path
    installed: str | None
    current: bool = False
    previous: bool = False
    models: dict[Sign, dict[str, Any]] = field(default_factory=dict)  # backbone, quantization, ...
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "dir": str(self.dir),
                "installed": self.installed, "current": self.current, "previous": self.previous,
                "models": {s.value: m for s, m in self.models.items()}, "problem": self.problem}


@contextmanager
def _locked(packs_dir: Path) -> Iterator[None]:
    (packs_dir / STORE).mkdir(parents=True, exist_ok=True)
    with open(packs_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _link_target(packs_dir: Path, name: str) -> str | None:
    """The pack id a link names, or None if the link is absent or dangling."""
    link = packs_dir / name
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    return target.name if (packs_dir / target).is_dir() else None


def _set_link(packs_dir: Path, name: str, pack_id: str) -> None:
    tmp = packs_dir / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    os.symlink(f"{STORE}/{pack_id}", tmp)
    try:
        os.replace(tmp, packs_dir / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(packs_dir)


def current_pack_dir(packs_dir: Path | str) -> Path | None:
    """Folder of the running pack, or None when no pack is installed."""
    pack_id = _link_target(Path(packs_dir).expanduser(), CURRENT)
    return None if pack_id is None else Path(packs_dir).expanduser() / STORE / pack_id


def _installed_info(pack_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((pack_dir / INSTALL_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def install_pack(pack_file: Path | str, packs_dir: Path | str, *, public_key: Any = None,
                 threads: int = 2, device_version: str = device.__version__,
                 keep: int = KEEP_PACKS) -> InstalledPack:
    """Verify and install ``pack_file``; make it current and the old current previous.

    Raises InstallError (with every problem found; NotEnoughSpaceError when the disk is
    short) and leaves ``current`` as it was."""
    pack_file, packs_dir = Path(pack_file), Path(packs_dir).expanduser()
    with _locked(packs_dir):
        store = packs_dir / STORE
        for stale in store.glob(f"{STAGING_PREFIX}*"):  # a crashed install's leftovers
            shutil.rmtree(stale, ignore_errors=True)
        check_space(pack_file, store)  # after the leftovers went: they count as free
        staging = store / f"{STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            report = verify_into(pack_file, staging, public_key=public_key, threads=threads,
                                 device_version=device_version, fsync=True)
            if not report.ok:
                raise InstallError(f"{pack_file}: pack refused, nothing changed", report.problems,
                                   report)
            assert report.manifest is not None and report.pack_id is not None
            pack_id = report.pack_id
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            info = {"id": pack_id, "version": report.manifest.pack_version, "installed": now,
                    "source": str(pack_file.resolve()), "pack_sha256": sha256_file(pack_file),
                    "signature_checked": report.signature_checked, "notes": report.notes}
            (staging / INSTALL_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            old_current = _link_target(packs_dir, CURRENT)
            target = store / pack_id
            if old_current == pack_id:
                log.info("pack %s is already current; nothing to switch", pack_id)
                return InstalledPack(pack_id, report.manifest.pack_version, target,
                                     _installed_info(target).get("installed", now), report)
            if target.exists():  # installed before (e.g. the previous pack): replace with this copy
                trash = store / f"{STAGING_PREFIX}old-{uuid.uuid4().hex[:8]}"
                os.rename(target, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(staging, target)
            fsync_dir(store)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        if old_current is not None:
            _set_link(packs_dir, PREVIOUS, old_current)
        _set_link(packs_dir, CURRENT, pack_id)
        log.info("installed pack %s as current (previous: %s)", pack_id, old_current)
        _prune(packs_dir, keep)
    return InstalledPack(pack_id, report.manifest.pack_version, target, now, report)


def rollback(packs_dir: Path | str) -> InstalledPack:
    """Make the previous pack current again (and the current one previous)."""
    packs_dir = Path(packs_dir).expanduser()
    with _locked(packs_dir):
        cur, prev = _link_target(packs_dir, CURRENT), _link_target(packs_dir, PREVIOUS)
        if prev is None:
            raise InstallError(f"{packs_dir}: there is no previous pack to roll back to "
                               "(only one pack was ever installed, or it was removed)")
        if cur is not None:
            _set_link(packs_dir, PREVIOUS, cur)
        _set_link(packs_dir, CURRENT, prev)
        log.info("rolled back: current is now %s (previous: %s)", prev, cur)
    pack_dir = packs_dir / STORE / prev
    info = _installed_info(pack_dir)
    return InstalledPack(prev, info.get("version", prev), pack_dir, info.get("installed", ""))


def _read_pack(pack_dir: Path) -> PackInfo:
    info = _installed_info(pack_dir)
    pack = PackInfo(pack_dir.name, info.get("version"), pack_dir, info.get("installed"))
    try:
        manifest = read_manifest(pack_dir)
    except (OSError, ManifestError) as exc:
        pack.problem = f"{MANIFEST_NAME} unreadable ({exc})"
        return pack
    pack.version = manifest.pack_version
    for sign, entry in manifest.models.items():
        try:
            card = load_card(pack_dir / entry.card)
        except CardError as exc:
            pack.problem = str(exc)
            continue
        pack.models[sign] = {"backbone": card.backbone, "quantization": card.quantization,
                             "input_size": list(card.input_size), "head": card.head}
    return pack


def list_packs(packs_dir: Path | str) -> list[PackInfo]:
    """Installed packs, newest install first, with current/previous marked."""
    packs_dir = Path(packs_dir).expanduser()
    store = packs_dir / STORE
    if not store.is_dir():
        return []
    cur, prev = _link_target(packs_dir, CURRENT), _link_target(packs_dir, PREVIOUS)
    packs = []
    for pack_dir in store.iterdir():
        if pack_dir.name.startswith(".") or not pack_dir.is_dir():
            continue
        pack = _read_pack(pack_dir)
        pack.current, pack.previous = pack.id == cur, pack.id == prev
        packs.append(pack)
    return sorted(packs, key=lambda p: (p.installed or "", p.id), reverse=True)


def _prune(packs_dir: Path, keep: int) -> None:
    keep = max(keep, 2)
    packs = list_packs(packs_dir)
    spare = [p for p in packs if not (p.current or p.previous)]
    for pack in spare[max(0, keep - (len(packs) - len(spare))):]:
        log.info("removing old pack %s (keeping %d)", pack.id, keep)
        shutil.rmtree(pack.dir, ignore_errors=True)
