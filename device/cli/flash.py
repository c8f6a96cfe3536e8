"""``python -m device flash PACK``: verify a model pack and make it the current one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from device.cli.packs import add_location_arguments, resolve_location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pack", type=Path, help="the pack file (.tar from `python -m convert pack`)")
    add_location_arguments(parser)
    parser.add_argument("--public-key", type=Path,
                        help="Ed25519 public key (overrides packs.public_key); packs must be signed")


def run(args: argparse.Namespace) -> int:
    from device.packs.install import InstallError, install_pack

    where = resolve_location(args)
    print(f"checking {args.pack} (schema, checksums, signature, version, self-test)...")
    try:
        installed = install_pack(args.pack, where.packs_dir, public_key=where.public_key,
                                 threads=where.threads)
    except InstallError as exc:  # a refused pack is bad input: exit 2, nothing changed
        print(f"python -m device flash: {exc}", file=sys.stderr)
        return 2
    if installed.report is not None:
        print(installed.report.summary())
    print(f"installed pack {installed.version} ({installed.id}) as current in {where.packs_dir}; "
          "restart the device service to use it; `python -m device rollback` undoes this")
    return 0
