"""``python -m device bench-followup``: find a lesion again over synthetic follow-ups."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from device.config import load_config_arg
from device.core.atomic import atomic_write_text
from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100,
                        help="synthetic lesions, each over 3 visits (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="first lesion's seed (default 0)")
    parser.add_argument("--size", default=None, metavar="WxH",
                        help="frame size (default: the config's camera width x height)")
    parser.add_argument("--config", type=Path, default=None,
                        help="device config YAML (default: the packaged default config)")
    parser.add_argument("--pack", type=Path, default=None,
                        help="time whole scans with this extracted pack (default: the installed "
                             "pack if any, else quality check + auto crop only)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the report as JSON to FILE")


def _size(text: str | None, config) -> tuple[int, int]:
    if not text:
        return config.camera.width, config.camera.height
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise UserError(f"--size {text!r}: give width x height, e.g. 1280x960") from exc
    if not (64 <= w <= 4096 and 64 <= h <= 4096):
        raise UserError(f"--size {text}: each side must be 64-4096 pixels")
    return w, h


def _scanner(config, pack: Path | None):
    """A Scanner with the pack's models, or None when no pack is installed or given."""
    from device.packs.install import current_pack_dir
    from device.scan.pipeline import Scanner

    if pack is None and current_pack_dir(config.packs.dir) is None:
        return None
    from device.cli.scan import load_models
    from device.config import CropMode

    config.crop.mode = CropMode.AUTO
    return Scanner(config, None, load_models(config, pack))


def run(args: argparse.Namespace) -> int:
    from device.tools.followup_bench import run_followup_bench

    if args.n < 1:
        raise UserError("--n must be at least 1")
    config = load_config_arg(args.config)
    width, height = _size(args.size, config)
    report = run_followup_bench(args.n, seed=args.seed, width=width, height=height,
                                scanner=_scanner(config, args.pack), quality=config.quality)
    print(report.format())
    if args.json:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
