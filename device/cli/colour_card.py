"""``python -m device colour-card OUT``: write the project's printable colour card as
OUT.png and OUT.pdf (device.colour.card; printing instructions in docs/colour-card.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output path; .png and .pdf are written")
    parser.add_argument("--dpi", type=int, default=300, help="print resolution (default 300)")


def run(args: argparse.Namespace) -> int:
    from device.colour.card import PRINT_PATCH_MM, write_printable

    if not 150 <= args.dpi <= 1200:
        raise UserError("--dpi must be between 150 and 1200")
    for path in write_printable(args.out, args.dpi):
        print(path)
    print(f"Print at 100 % (actual size, no 'fit to page'): each patch is {PRINT_PATCH_MM:g} mm. "
          "See docs/colour-card.md")
    return 0
