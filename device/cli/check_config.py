"""``python -m device check-config FILE``: validate a device configuration file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="YAML configuration file to check")


def run(args: argparse.Namespace) -> int:
    from device.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.file}: {len(exc.problems)} problem(s); nothing was changed", file=sys.stderr)
        return 2
    print("ok")
    print(config.summary())
    return 0
