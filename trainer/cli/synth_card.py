"""``python -m trainer synth-card OUT --n N``: full synthetic photos with a colour card
beside the lesion, under D65 (trainer.synth_card), for ``python -m device bench-colour
--scenes OUT``."""

from __future__ import annotations

import argparse
from pathlib import Path

from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--n", type=int, default=50, help="number of photos (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--lights", type=int, default=0,
                        help="also take each photo under this many random lights (2700-6500 K, "
                             "+-1 EV, crosstalk), each recorded in scenes.json (default 0)")


def run(args: argparse.Namespace) -> int:
    from trainer.synth_card import write_card_scenes

    if args.n < 1:
        raise UserError("--n must be at least 1")
    if args.lights < 0:
        raise UserError("--lights must be 0 or more")
    print(write_card_scenes(args.out, args.n, args.seed, args.lights))
    return 0
