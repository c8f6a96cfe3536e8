"""``python -m trainer label ACTION``: the labelling studio's commands.

init, adduser, serve, import, agreement, export, status. Each action is one small function;
bad input is a UserError (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from device.core.cliutil import UserError
from trainer.label.models import LabelError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("init", help="create a project from a folder of photos (again: add new)")
    p.add_argument("project", type=Path, metavar="PROJECT")
    p.add_argument("--photos", type=Path, required=True, metavar="DIR",
                   help="folder of JPEG/PNG photos (searched recursively)")
    p.add_argument("--patients", type=Path, metavar="CSV",
                   help="path,patient_id,region per photo (default: from folder names)")
    p.add_argument("--overlap", type=float, default=None, metavar="SHARE",
                   help="share of photos graded by several raters (default 0.2; 1 = all)")
    p.add_argument("--overlap-raters", type=int, default=None, metavar="N",
                   help="raters per overlap photo (default 2)")
    p = sub.add_parser("adduser", help="add a rater or adjudicator (or set their password)")
    p.add_argument("project", type=Path, metavar="PROJECT")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--role", choices=("rater", "adjudicator"), default="rater")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin (default: prompt)")
    p = sub.add_parser("serve", help="run the web app for raters (127.0.0.1 by default)")
    p.add_argument("project", type=Path, metavar="PROJECT")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=5077)
    p = sub.add_parser("import", help="import labels from a CSV or COCO file (all or nothing)")
    p.add_argument("project", type=Path, metavar="PROJECT")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", type=Path, metavar="FILE",
                     help="rater,photo,x,y,w,h,erythema,excoriation,lichenification rows")
    src.add_argument("--coco", type=Path, metavar="FILE", help="COCO JSON with grade attributes")
    p.add_argument("--rater", help="rater for rows that name none (COCO has no rater field)")
    p = sub.add_parser("agreement", help="inter-rater agreement per sign, with 95%% intervals")
    p.add_argument("project", type=Path, metavar="PROJECT")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("export", help="write graded crops + manifest.csv (or a box list, COCO)")
    p.add_argument("project", type=Path, metavar="PROJECT")
    p.add_argument("--out", type=Path, required=True,
                   help="a folder for crops + manifest; a FILE with --boxes-only or --coco")
    p.add_argument("--context", type=float, default=0.0, metavar="F",
                   help="margin around each box, as a share of its longer side (default 0)")
    p.add_argument("--size", type=int, default=0, metavar="PX",
                   help="shrink crops to at most PX a side (default: keep the photo's pixels)")
    p.add_argument("--force", action="store_true", help="replace an earlier export in --out")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--boxes-only", action="store_true",
                      help="write a CSV of boxes (file, sha256, coordinates), no images")
    kind.add_argument("--coco", action="store_true", help="write COCO JSON (consensus boxes)")
    p.add_argument("--relative-to", type=Path, metavar="DIR",
                   help="with --boxes-only: write file paths relative to DIR")
    p = sub.add_parser("status", help="photos, raters, progress and the adjudication queue")
    p.add_argument("project", type=Path, metavar="PROJECT")


def run(args: argparse.Namespace) -> int:
    action = ACTIONS[args.action]
    try:
        return action(args)
    except LabelError as exc:
        raise UserError(str(exc)) from None


def _open(project: Path):
    from trainer.label.db import connect, open_project

    return connect(open_project(project))


def do_init(args: argparse.Namespace) -> int:
    from trainer.label.db import connect, create_project, set_setting, transaction
    from trainer.label.photos import import_photos, read_patients_csv, reassign_overlap

    photos = args.photos.expanduser()
    if not photos.is_dir():
        raise UserError(f"--photos {photos} does not exist or is not a folder")
    if args.overlap is not None and not 0 <= args.overlap <= 1:
        raise UserError(f"--overlap must lie between 0 and 1, got {args.overlap}")
    if args.overlap_raters is not None and args.overlap_raters < 2:
        raise UserError("--overlap-raters must be at least 2")
    patients = read_patients_csv(args.patients) if args.patients else None
    project = create_project(args.project, photos.resolve())
    db = connect(project)
    try:
        with transaction(db):
            if args.overlap is not None:
                set_setting(db, "overlap_share", str(args.overlap))
                reassign_overlap(db)
            if args.overlap_raters is not None:
                set_setting(db, "overlap_raters", str(args.overlap_raters))
        report = import_photos(db, photos.resolve(), patients)
        total = db.execute("SELECT COUNT(*), SUM(overlap) FROM photos").fetchone()
    finally:
        db.close()
    print(report.summary())
    print(f"project {project.root}: {total[0]} photos, {total[1] or 0} of them for several raters")
    return 0


def do_adduser(args: argparse.Namespace) -> int:
    from trainer.label.db import open_project
    from trainer.label.models import parse_role
    from trainer.label.users import add_user, get_user, set_password
    from trainer.label.web.auth import session_store

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ; nothing changed")
    db = _open(args.project)
    try:
        role = parse_role(args.role)
        if get_user(db, args.name):
            set_password(db, args.name, password, role)
            # A cookie taken before the change must not outlive it (nor other browsers).
            ended = session_store(open_project(args.project)).revoke_user(args.name)
            print(f"set the password and role ({role.value}) of {args.name}; ended "
                  f"{ended} open login(s)")
        else:
            add_user(db, args.name, password, role)
            print(f"added {role.value} {args.name}")
    finally:
        db.close()
    return 0


def do_serve(args: argparse.Namespace) -> int:
    from waitress import serve

    from trainer.label.db import open_project
    from trainer.label.web import create_app

    app = create_app(open_project(args.project))
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: other computers can reach the studio", args.host)
    print(f"labelling studio on http://{args.host}:{args.port}/ (Ctrl+C to stop)")
    try:
        serve(app, host=args.host, port=args.port, threads=4)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
                        "choose another --port") from None
    return 0


def do_import(args: argparse.Namespace) -> int:
    from trainer.label.importers import read_coco_labels, read_csv_labels, write_labels

    db = _open(args.project)
    try:
        if args.csv:
            rows = read_csv_labels(db, args.csv, args.rater)
        else:
            rows = read_coco_labels(db, args.coco, args.rater)
        result = write_labels(db, rows)
    finally:
        db.close()
    print(f"imported {result.boxes} boxes on {result.photos} photos from "
          f"{', '.join(result.raters)}; {result.ungraded} box(es) still need grades")
    return 0


def do_agreement(args: argparse.Namespace) -> int:
    from trainer.label.agreement import compute_agreement, format_report
    from trainer.run import write_json

    if args.bootstrap < 0:
        raise UserError("--bootstrap must be 0 or more")
    db = _open(args.project)
    try:
        report = compute_agreement(db, n_boot=args.bootstrap, seed=args.seed)
    finally:
        db.close()
    print(format_report(report))
    if args.json:
        write_json(args.json, report.to_json())
        print(f"wrote {args.json}")
    return 0


def do_export(args: argparse.Namespace) -> int:
    from trainer.label.export import export_box_list, export_coco, export_crops

    db = _open(args.project)
    try:
        if args.boxes_only:
            n = export_box_list(db, args.out, relative_to=args.relative_to)
            print(f"wrote {n} boxes (file names, sha256, coordinates; no images) to {args.out}")
        elif args.coco:
            n = export_coco(db, args.out)
            print(f"wrote {n} consensus boxes as COCO to {args.out}")
        else:
            r = export_crops(db, args.out, context=args.context, size=args.size,
                             force=args.force)
            print(f"wrote {r.crops} crops from {r.photos} photos and manifest.csv to {args.out}"
                  f"; {r.left_out} lesion(s) left out (no grade yet, or awaiting adjudication)")
            print(f"next: python -m trainer data-summary {args.out}")
    finally:
        db.close()
    return 0


def do_status(args: argparse.Namespace) -> int:
    from trainer.label.annotations import progress
    from trainer.label.consensus import adjudication_queue
    from trainer.label.users import list_users

    db = _open(args.project)
    try:
        n = db.execute("SELECT COUNT(*), SUM(overlap) FROM photos").fetchone()
        print(f"{n[0]} photos, {n[1] or 0} for several raters")
        for user in list_users(db):
            p = progress(db, user.name)
            ungraded = db.execute(
                "SELECT COUNT(*) FROM boxes WHERE rater = ? AND (erythema IS NULL OR"
                " excoriation IS NULL OR lichenification IS NULL)", (user.name,)).fetchone()[0]
            print(f"  {user.role.value:<12}{user.name:<20}{p.done} done, {p.remaining} waiting"
                  + (f", {ungraded} box(es) without all three grades" if ungraded else ""))
        print(f"adjudication queue: {len(adjudication_queue(db))} lesion(s)")
    finally:
        db.close()
    return 0


ACTIONS = {"init": do_init, "adduser": do_adduser, "serve": do_serve, "import": do_import,
           "agreement": do_agreement, "export": do_export, "status": do_status}
