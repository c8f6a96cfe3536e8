"""The training-data export as a download (technicians and admins only; staff cannot
export). Each export is written to the audit log with who and when.

``GET /export/dataset.tar.gz`` (pages) and ``GET /api/export/dataset.tar.gz`` (API)
take ``since``, ``until`` (YYYY-MM-DD), ``include_unreviewed`` and ``full_frames``
(1/true). The work is device.export.archive's; this module only maps the request.
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import Blueprint, abort, request, send_file
from flask.typing import ResponseReturnValue

import device
from device.core.errors import http_status
from device.export.dataset import ExportError
from device.export.rows import ExportFilter
from device.store.audit import AuditAction, AuditLog
from device.web.auth import current_user, roles_required
from device.web.common import ctx, store
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("dataexport", __name__)


def _date(name: str) -> dt.date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        abort(400, description=f"{name}: {text!r} is not a date (YYYY-MM-DD)")


def _flag(name: str) -> bool:
    return request.args.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def request_filter() -> ExportFilter:
    flt = ExportFilter(since=_date("since"), until=_date("until"),
                       include_unreviewed=_flag("include_unreviewed"),
                       full_frames=_flag("full_frames"))
    if flt.since and flt.until and flt.since > flt.until:
        abort(400, description=f"since {flt.since} is after until {flt.until}")
    return flt


@bp.route("/export/dataset.tar.gz")
@bp.route("/api/export/dataset.tar.gz")
@roles_required(Role.TECHNICIAN)
def download() -> ResponseReturnValue:
    from device.export.archive import export_tarball

    flt = request_filter()
    user = current_user()
    c = ctx()
    now = dt.datetime.now(dt.timezone.utc)
    name = f"{c.config.device_name}-dataset-{now:%Y%m%dT%H%M%SZ}"
    try:
        handle, result = export_tarball(
            store(), flt, name=name, device_name=c.config.device_name,
            software_version=device.__version__, exported_by=user.username, clock=lambda: now)
    except ExportError as exc:  # nothing to export: 404 (NotFound), other input: 400
        abort(http_status(exc), description=str(exc))
    AuditLog(c.data_dir).record(AuditAction.DATA_EXPORT, user.username, user.role.value,
                                details={"download": f"{name}.tar.gz", "filter": flt.to_dict(),
                                         "scans": result.rows,
                                         "rows_sha256": result.provenance["rows_sha256"]}, at=now)
    return send_file(handle, mimetype="application/gzip", as_attachment=True,
                     download_name=f"{name}.tar.gz")
