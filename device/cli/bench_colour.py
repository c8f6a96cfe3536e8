"""``python -m device bench-colour``: grade synthetic lesions under several lights with and
without the colour card's correction (device.tools.colourbench)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from device.cli.scan import load_models
from device.config import load_config_arg
from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="device config YAML (default: the packaged default config)")
    parser.add_argument("--n", type=int, default=50, help="number of lesions (default 50)")
    parser.add_argument("--scenes", type=Path, default=None,
                        help="folder written by python -m trainer synth-card (default: the "
                             "device's own synthetic renderer)")
    parser.add_argument("--pack", type=Path, default=None,
                        help="use this extracted pack folder instead of the installed one")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lights (default 0)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--sheet", type=Path, default=None,
                        help="also write a contact sheet (PNG): the first lesion under three "
                             "lights, before and after correction")


def run(args: argparse.Namespace) -> int:
    from device.tools.colourbench import (
        device_scenes,
        folder_scenes,
        format_colour_bench,
        run_colour_bench,
    )

    if args.n < 1:
        raise UserError("--n must be at least 1")
    if args.scenes is not None and not (args.scenes / "scenes.json").is_file():
        raise UserError(f"{args.scenes}: no scenes.json; write scenes with python -m trainer "
                        "synth-card DIR --n N")
    config = load_config_arg(args.config)
    models = load_models(config, args.pack)
    scenes = (folder_scenes(args.scenes, args.n) if args.scenes is not None
              else device_scenes(args.n, args.seed))
    if args.sheet is not None:
        from device.core.imageio import encode_png
        from device.tools.colourbench import contact_sheet

        first = next(iter(folder_scenes(args.scenes, 1) if args.scenes is not None
                          else device_scenes(1, args.seed)))
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        args.sheet.write_bytes(encode_png(contact_sheet(config, first, seed=args.seed)))
    report = run_colour_bench(config, models, scenes, seed=args.seed)
    report["scenes"] = str(args.scenes) if args.scenes else "device synthetic renderer"
    print(format_colour_bench(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0
