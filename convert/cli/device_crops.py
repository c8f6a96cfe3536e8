"""``python -m convert device-crops``: synthetic training crops cut from full synthetic
photos by the device's own scan (convert.devicecrops), for training as the device sees."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from device.core.cliutil import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from convert.devicecrops import DEFAULT_PROFILE
    from trainer.cli.synth import photo_size

    parser.add_argument("--out", type=Path, required=True, help="output folder (empty or absent)")
    parser.add_argument("--n", type=int, default=1000, help="number of crops (default 1000)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the full photos (same seed, same bytes)")
    parser.add_argument("--size", type=int, default=96,
                        help="side the crops are resized to: the models' input size (default 96)")
    parser.add_argument("--config", type=Path, default=DEFAULT_PROFILE,
                        help="device config whose crop and colour settings cut the photos "
                             "(default: the demo's, firmware_config/desktop-demo.yaml)")
    parser.add_argument("--photo-size", type=photo_size, default=None, metavar="WxH",
                        help="size of the full photos the crops are cut from (default 1024x768)")
    parser.add_argument("--raters", type=int, default=0, metavar="K",
                        help="simulate K raters as `trainer synth --raters` does")
    parser.add_argument("--drop-fallbacks", action="store_true",
                        help="leave out photos whose auto crop fell back to the guide square "
                             "(the lesion is not framed in it: see convert/devicecrops.py)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes (default: up to 2); the bytes do not depend on it")


def run(args: argparse.Namespace) -> int:
    from convert.devicecrops import generate_device_crops
    from device.config import load_config_arg

    if args.n < 1 or args.size < 32:
        raise UserError(f"--n must be >= 1 and --size >= 32 (got {args.n}, {args.size})")
    if args.raters < 0:
        raise UserError(f"--raters must be 0 or more, got {args.raters}")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise UserError(f"{args.out} is not an empty folder; choose a new one")
    config = load_config_arg(args.config)
    start = time.perf_counter()
    summary = generate_device_crops(args.out, args.n, args.seed, args.size, config=config,
                                    workers=args.workers, photo_size=args.photo_size,
                                    drop_fallbacks=args.drop_fallbacks)
    if args.raters:
        from trainer.synth_raters import add_simulated_raters

        for p in add_simulated_raters(args.out, args.raters, args.seed):
            print(f"simulated rater {p.name}: bias {p.bias:+.2f}, noise {p.noise:.2f} grades")
    took = time.perf_counter() - start
    print(summary.line())
    print(f"wrote {summary.kept} crops ({args.size}x{args.size}, seed {args.seed}) to {args.out} in "
          f"{took:.1f} s; synthetic data: scores measured on it are not clinical accuracy")
    return 0
