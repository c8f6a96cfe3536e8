"""``python -m device evaluate-photos DIR``: the scan pipeline on every photo in a
folder (recursively): per photo the quality verdict, abstention, crop and grades;
then the totals, and with ``--boxes`` the share of crops on a labelled lesion.
``--sheet OUT.png`` draws a contact sheet for a person to look at; ``--json OUT``
writes every figure. A way to check a device's eye on a clinic's own photos."""

from __future__ import annotations

import argparse
from pathlib import Path

from device.cli.scan import load_models
from device.config import load_config_arg
from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="folder of photos (searched recursively), or one photo")
    parser.add_argument("--config", type=Path, default=None,
                        help="device config YAML (default: the packaged default config)")
    parser.add_argument("--pack", type=Path, default=None,
                        help="use this extracted pack folder instead of the installed one")
    parser.add_argument("--boxes", type=Path, default=None,
                        help="lesion boxes CSV: file,sha256,width,height,x,y,w,h,note")
    parser.add_argument("--sheet", type=Path, default=None, help="write a contact sheet PNG here")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--quiet", action="store_true", help="print the totals only")


def run(args: argparse.Namespace) -> int:
    from device.core.atomic import atomic_write_json
    from device.scan.pipeline import Scanner
    from device.tools.contactsheet import thumbnail, write_sheet
    from device.tools.photoeval import (
        BoxesError,
        evaluate_photo,
        find_photos,
        format_totals,
        read_boxes,
        totals,
    )

    if not args.dir.exists():
        raise UserError(f"{args.dir}: no such folder or photo")
    photos = find_photos(args.dir)
    if not photos:
        raise UserError(f"{args.dir}: no photos found (looked for .jpg, .jpeg, .png, .webp, "
                        ".bmp, .tif under it)")
    try:
        boxes = read_boxes(args.boxes) if args.boxes else None
    except BoxesError as exc:
        raise UserError(str(exc)) from exc
    config = load_config_arg(args.config)
    scanner = Scanner(config, None, load_models(config, args.pack))
    results, tiles = [], []
    for photo in photos:
        result, image = evaluate_photo(scanner, photo, args.dir, boxes)
        results.append(result)
        if args.sheet:
            tiles.append(thumbnail(image, result))
        if not args.quiet:
            print(result.line(), flush=True)
    summary = totals(results)
    print(format_totals(summary))
    if args.sheet:
        print(f"contact sheet: {write_sheet(tiles, args.sheet)}")
    if args.json:
        atomic_write_json(args.json, {
            "totals": summary, "photos": [r.to_dict() for r in results],
            "pack_version": scanner.models.pack_version if scanner.models else None})
        print(f"results: {args.json}")
    return 0
