"""``python -m trainer synth``: generate a synthetic lesion data set (and its contact sheet)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from device.core.cliutil import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder (must be empty or absent unless --force)")
    parser.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument("--size", type=int, default=256, help="lesion patch side in pixels")
    parser.add_argument("--layout", choices=("folders", "manifest"), default=None,
                        help="folders: OUT/<sign>/<grade>/*.jpg (default); manifest: "
                             "OUT/manifest.csv + OUT/images/ (default with --full-photo)")
    parser.add_argument("--full-photo", action="store_true",
                        help="render 1024x768 photos with the lesion in part of them and its box "
                             "in the manifest (for testing the device's cropping)")
    parser.add_argument("--photo-size", type=photo_size, default=None, metavar="WxH",
                        help="size of the --full-photo photos (default 1024x768)")
    parser.add_argument("--raters", type=int, default=0, metavar="K",
                        help="simulate K raters, each with their own bias and noise around the "
                             "true grade, written as the labelling studio's export writes them "
                             "(consensus in the sign columns, each rater's grades beside it; "
                             "manifest layout)")
    parser.add_argument("--contact-sheet", type=Path, metavar="PNG",
                        help="also draw a sign x grade grid to this PNG")
    parser.add_argument("--workers", type=int, default=None,
                        help="render processes (default: up to 2); the bytes do not depend on it")
    parser.add_argument("--force", action="store_true",
                        help="replace a data set already in --out (removes only what synth writes)")


def photo_size(text: str) -> tuple[int, int]:
    """``WxH`` (e.g. 640x480) -> (width, height); an argparse type."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 640x480") from None
    if min(w, h) < 128 or max(w, h) > 8192:
        raise argparse.ArgumentTypeError(f"{text}: each side must be 128-8192 pixels")
    return w, h


def run(args: argparse.Namespace) -> int:
    from trainer.synth import FULL_PHOTO_SIZE, generate_dataset, make_contact_sheet, remove_dataset

    layout = args.layout or ("manifest" if args.full_photo or args.raters else "folders")
    if args.raters and layout != "manifest":
        raise UserError("--raters needs --layout manifest (the raters' grades go in the CSV)")
    if args.raters < 0:
        raise UserError(f"--raters must be 0 or more, got {args.raters}")
    if args.full_photo and layout != "manifest":
        raise UserError("--full-photo needs --layout manifest (the lesion box goes in the CSV)")
    if args.photo_size is not None and not args.full_photo:
        raise UserError("--photo-size is the size of --full-photo photos; add --full-photo")
    size = args.photo_size or FULL_PHOTO_SIZE
    if args.n < 0 or args.size < 32:
        raise UserError(f"--n must be >= 0 and --size >= 32 (got {args.n}, {args.size})")
    if args.n == 0 and not args.contact_sheet:
        raise UserError("--n 0 makes nothing; give --n or --contact-sheet")
    if args.n > 0:
        out: Path = args.out
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file, not a folder")
        if out.is_dir() and any(out.iterdir()):
            if not args.force:
                raise UserError(f"{out} is not empty; choose a new folder or pass --force")
            remove_dataset(out)
            if any(out.iterdir()):
                raise UserError(f"{out} holds files synth did not write; choose a new folder")
        start = time.perf_counter()
        generate_dataset(out, args.n, args.seed, size=args.size, layout=layout,
                         full_photo=args.full_photo, workers=args.workers, photo_size=size)
        if args.raters:
            from trainer.synth_raters import add_simulated_raters

            for p in add_simulated_raters(out, args.raters, args.seed):
                print(f"simulated rater {p.name}: bias {p.bias:+.2f}, noise {p.noise:.2f} grades")
        took = time.perf_counter() - start
        shape = f"{size[0]}x{size[1]} full photos" if args.full_photo else f"{args.size}x{args.size}"
        print(f"wrote {args.n} synthetic images ({shape}, {layout} layout, seed {args.seed}) "
              f"to {out} in {took:.1f} s ({args.n / took:.0f} images/s)")
        print("synthetic data: scores measured on it are not clinical accuracy")
    if args.contact_sheet:
        path = make_contact_sheet(args.contact_sheet, seed=args.seed)
        print(f"contact sheet: {path}")
    return 0
