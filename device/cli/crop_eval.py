"""``python -m device crop-eval MANIFEST``: measure the auto crop on full photos whose
lesion boxes are known (a manifest with box_x, box_y, box_w, box_h columns)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path,
                        help="manifest.csv with box_x, box_y, box_w, box_h columns")
    parser.add_argument("--limit", type=int, default=None, help="first N rows only")


def run(args: argparse.Namespace) -> int:
    from device.vision.crop import evaluate_manifest

    if not args.manifest.is_file():
        raise UserError(f"{args.manifest}: no such manifest file")
    result = evaluate_manifest(str(args.manifest), limit=args.limit)
    print(json.dumps(result))
    print(f"auto crop IoU >= 0.5 on {result['n']} full photos: "
          f"{result['iou_ge_0.5']:.1%} (mean IoU {result['mean_iou']:.2f}, "
          f"{result['fallbacks']} fell back to guide)")
    return 0
