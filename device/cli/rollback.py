"""``python -m device rollback``: switch back to the previous model pack."""

from __future__ import annotations

import argparse
import sys

from device.cli.packs import add_location_arguments, resolve_location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from device.packs.install import InstallError, rollback

    where = resolve_location(args)
    try:
        pack = rollback(where.packs_dir)
    except InstallError as exc:
        print(f"python -m device rollback: {exc}", file=sys.stderr)
        return 1
    print(f"current pack is now {pack.version} ({pack.id}); restart the device service to use it")
    return 0
