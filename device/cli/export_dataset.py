"""``python -m device export-dataset``: reviewed scans as a training data set (graded
crops, manifest.csv in the trainer's layout, provenance.json). See
device/export/dataset.py; the dashboard offers the same export as a .tar.gz."""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import getpass
import os
from pathlib import Path

from device.config import load_config_arg
from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="device config YAML (default: the packaged default config)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="scan store folder (default: the config's storage.data_dir)")
    parser.add_argument("--since", default=None, metavar="YYYY-MM-DD",
                        help="only visits on or after this date")
    parser.add_argument("--until", default=None, metavar="YYYY-MM-DD",
                        help="only visits on or before this date")
    parser.add_argument("--include-unreviewed", action="store_true",
                        help="also scans whose grades nobody confirmed (the model's grades)")
    parser.add_argument("--full-frames", action="store_true",
                        help="also the full frames, faces blurred outside the crop")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")


def parse_date(text: str | None, option: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text!r}: expected a date as YYYY-MM-DD") from None


def export_clock():
    """Now, or SOURCE_DATE_EPOCH when set (reproducible exports: same data, same bytes)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
    except ValueError:
        raise UserError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds") from None
    return lambda: when


#: What an OSError met while exporting means for the person, by errno.
_OS_REASONS = {
    errno.ENOSPC: "the disk is full; free space or export to another disk",
    errno.EDQUOT: "the disk quota is used up; free space or export to another disk",
    errno.EROFS: "the disk is read-only; export to a disk that can be written",
    errno.EACCES: "permission denied; choose a folder you may write to",
    errno.EPERM: "not permitted; choose a folder you may write to",
    errno.ENAMETOOLONG: "a name is too long for the disk; choose a shorter --out",
    errno.ENOENT: "no such folder (or one the system does not let files be made in)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EIO: "the disk failed to read or write (check the card or drive)",
}


def write_error(exc: OSError, out: Path) -> UserError:
    """One line saying why the export to ``out`` failed, decided by the errno."""
    reason = _OS_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    where = f" ({exc.filename})" if exc.filename else ""
    return UserError(f"cannot export to {out}{where}: {reason}. Nothing was exported and no "
                     "partial copy is left")


def run(args: argparse.Namespace) -> int:
    import device
    from device.export.dataset import ExportError, check_target, export_dataset
    from device.export.rows import ExportFilter
    from device.store import DB_NAME, Store
    from device.store.audit import AuditAction, AuditLog

    config = load_config_arg(args.config)
    flt = ExportFilter(since=parse_date(args.since, "--since"),
                       until=parse_date(args.until, "--until"),
                       include_unreviewed=args.include_unreviewed, full_frames=args.full_frames)
    if flt.since and flt.until and flt.since > flt.until:
        raise UserError(f"--since {flt.since} is after --until {flt.until}")
    data_dir = Path(args.data_dir or config.storage.data_dir).expanduser()
    if not (data_dir / DB_NAME).is_file():
        raise UserError(f"{data_dir} holds no scan store ({DB_NAME}); give the device's data "
                        "folder with --data-dir or --config")
    who = f"cli:{getpass.getuser()}"
    protected = {"packs": config.packs.dir, "configured data": config.storage.data_dir}
    try:  # refused before the store is even opened
        check_target(args.out, data_dir=data_dir, force=args.force, protected=protected)
    except ExportError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        raise write_error(exc, args.out) from exc
    store = Store(data_dir, keep_images=config.storage.keep_images)
    try:
        result = export_dataset(store, args.out, flt, device_name=config.device_name,
                                software_version=device.__version__, exported_by=who,
                                force=args.force, clock=export_clock(), protected=protected)
    except ExportError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:  # a full or read-only disk, a name too long...: one line, exit 2
        raise write_error(exc, args.out) from exc
    finally:
        store.close()
    counts = result.provenance["counts"]
    AuditLog(data_dir).record(AuditAction.DATA_EXPORT, who, None, details={
        "out": str(result.out), "filter": flt.to_dict(), "scans": result.rows,
        "rows_sha256": result.provenance["rows_sha256"]})
    print(f"exported {result.rows} scans of {counts['patients']} patients to {result.out}")
    print(f"  reviewed {counts['reviewed']}, unreviewed {counts['unreviewed']}; overridden: "
          + ", ".join(f"{k} {v}" for k, v in counts["overridden"].items()))
    if result.skipped:
        print(f"  {result.skipped} scans left out: their image was not kept or was purged")
    if flt.full_frames:
        print(f"  full frames: {result.faces_blurred} faces blurred outside the crops")
    return 0
