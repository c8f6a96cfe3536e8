"""Model packs page (technician, admin): installed packs with their cards, upload a
pack (the same checks, self-test and atomic switch as ``python -m device flash``,
through ``device.packs.install``), roll back. The running service reloads its models
after each switch, so no restart is needed."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from device.core.card import CardError, load_card
from device.grading.models import ModelSetError, read_manifest
from device.packs.container import FormatIssue, format_problem
from device.packs.install import (
    InstalledPack,
    InstallError,
    NotEnoughSpaceError,
    PackInfo,
    install_pack,
    list_packs,
    rollback,
)
from device.scan.service import RollbackNote
from device.web.auth import current_user, roles_required
from device.web.common import ctx
from device.web.status import FIGURES, card_summary, pack_status
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("models", __name__)


class PackUploadError(ValueError):
    def __init__(self, message: str, problems: list[str] | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.status = status


def packs_dir() -> Path:
    return Path(ctx().config.packs.dir).expanduser()


def pack_cards(pack: PackInfo) -> dict[str, Any]:
    """The cards of an installed pack, summarised (sign -> card summary)."""
    cards: dict[str, Any] = {}
    try:
        manifest = read_manifest(pack.dir)
    except ModelSetError as exc:
        return {"error": str(exc)}
    for sign, entry in manifest.models.items():
        try:
            cards[sign.value] = card_summary(load_card(pack.dir / entry.card))
        except CardError as exc:
            cards[sign.value] = {"error": str(exc)}
    return cards


def packs_data() -> list[dict[str, Any]]:
    return [{**p.to_dict(), "cards": pack_cards(p)} for p in list_packs(packs_dir())]


def _reload(*, roll_back: bool = False) -> str | None:
    """Reload the service's models after a switch; the error text when that fails.
    With ``roll_back`` (after an install) a pack that does not load is rolled back
    by the service itself (``service.rollback_note`` says so)."""
    service = ctx().service
    try:
        if roll_back:
            service.load_or_roll_back()
        else:
            service.reload_models()
    except ModelSetError as exc:  # the service records it as its model_error
        log.error("models not reloaded after the pack switch: %s", exc)
        return str(exc)
    return None


@dataclass(frozen=True)
class UploadOutcome:
    """What installing an uploaded pack did: the pack, whether the service failed to load
    it (``reload_error``) and whether it rolled back by itself (``rolled_back``)."""

    pack: InstalledPack
    reload_error: str | None = None
    rolled_back: RollbackNote | None = None

    def rollback_sentence(self) -> str:
        """Why the pack is not in use, when the service rolled it back."""
        note = self.rolled_back
        assert note is not None
        return (f"pack {self.pack.version} passed its checks but failed to load on this device "
                f"({note.error}); rolled back automatically to "
                f"{note.running or 'nothing (the previous pack does not load either)'}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``POST /api/packs`` (device/web/API.md)."""
        report = self.pack.report
        return {"installed": {"id": self.pack.id, "version": self.pack.version,
                              "installed": self.pack.installed},
                "report": report.summary() if report else None,
                "reload_error": self.reload_error,
                "rolled_back": self.rolled_back.to_dict() if self.rolled_back else None}


@dataclass(frozen=True)
class RollbackOutcome:
    """A rollback from the dashboard: the pack now current, and a failed reload's error."""

    pack: PackInfo
    reload_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"current": {"id": self.pack.id, "version": self.pack.version},
                "reload_error": self.reload_error}


def install_upload(upload: Any) -> UploadOutcome:
    """Install an uploaded pack file; raises PackUploadError (nothing changed) on refusal."""
    if upload is None or not upload.filename:
        raise PackUploadError("choose a pack file (.tar from python -m convert pack)")
    config = ctx().config
    tmp_dir = ctx().data_dir / "uploads"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="pack-", suffix=".tar", dir=tmp_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            upload.save(fh)
        problem = format_problem(tmp, upload.filename)  # the checks flash makes, early
        if problem is not None:
            raise PackUploadError(problem.message,
                                  status=400 if problem.issue is FormatIssue.EMPTY else 415)
        try:
            installed = install_pack(tmp, packs_dir(), public_key=config.packs.public_key,
                                     threads=config.grading.threads)
        except InstallError as exc:  # name the upload, not its temporary copy
            problems = [p.replace(str(tmp), upload.filename) for p in exc.problems]
            raise PackUploadError(f"pack {upload.filename} refused; nothing changed", problems,
                                  status=507 if isinstance(exc, NotEnoughSpaceError) else 400) from exc
    finally:
        tmp.unlink(missing_ok=True)
    error = _reload(roll_back=True)
    log.info("%s installed pack %s (%s) from the dashboard", current_user().username,
             installed.version, installed.id)
    return UploadOutcome(installed, error, ctx().service.rollback_note)


def do_rollback() -> RollbackOutcome:
    try:
        pack = rollback(packs_dir())
    except InstallError as exc:
        raise PackUploadError(str(exc).splitlines()[0], exc.problems, status=409) from exc
    error = _reload()
    log.info("%s rolled back to pack %s (%s)", current_user().username, pack.version, pack.id)
    return RollbackOutcome(pack, error)


@bp.route("/models")
@roles_required(Role.TECHNICIAN)
def models_page() -> Any:
    return _render()


def _render(status: int = 200, problems: list[str] | None = None) -> Any:
    return render_template("models.html", nav="models", packs=packs_data(), running=pack_status(),
                           public_key=ctx().config.packs.public_key, figures=FIGURES,
                           problems=problems), status


@bp.route("/models/upload", methods=["POST"])
@roles_required(Role.TECHNICIAN)
def upload() -> Any:
    try:
        result = install_upload(request.files.get("pack"))
    except PackUploadError as exc:
        flash(f"{exc}" + "".join(f" · {p}" for p in exc.problems), "error")
        return _render(exc.status, exc.problems)
    note, version = result.rolled_back, result.pack.version
    if note is not None:
        flash(f"Pack {version} passed its checks but failed to load ({note.error}); rolled "
              "back automatically" + (f" to pack {note.running}." if note.running else
                                      ", but the previous pack does not load either."), "error")
    elif result.reload_error:
        flash(f"Pack {version} installed, but loading it failed: {result.reload_error}.",
              "error")
    else:
        flash(f"Pack {version} installed, self-test passed, now in use.", "info")
    return redirect(url_for("models.models_page"))


@bp.route("/models/rollback", methods=["POST"])
@roles_required(Role.TECHNICIAN)
def rollback_pack() -> Any:
    try:
        result = do_rollback()
    except PackUploadError as exc:
        abort(exc.status, description=str(exc))
    if result.reload_error:
        flash(f"Rolled back, but loading the pack failed: {result.reload_error}", "error")
    else:
        flash(f"Rolled back: pack {result.pack.version} is in use.", "info")
    return redirect(url_for("models.models_page"))
