"""``python -m convert verify PACK [--public-key KEY]``: the device's own checks
(device.packs.install.verify_pack: schema, checksums, signature, self-test), printed."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from device.core.cliutil import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pack", type=Path, help="model pack file")
    parser.add_argument("--public-key", type=Path, default=None,
                        help="Ed25519 public key the device holds; without it the signature is not checked")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads for the self-test")


def run(args: argparse.Namespace) -> int:
    from device.packs.install import verify_pack

    if not args.pack.is_file():
        raise UserError(f"{args.pack}: pack file not found")
    if args.public_key is not None and not args.public_key.is_file():
        raise UserError(f"{args.public_key}: public key not found")
    report = verify_pack(args.pack, public_key=args.public_key, threads=args.threads)
    if not report.ok:
        print(f"FAILED: the device would refuse this pack ({len(report.problems)} problem(s))")
        print(report.summary())
        return 1
    print(report.summary())
    manifest = report.manifest
    if manifest is not None:
        print(f"  made {manifest.created} by {manifest.software_version}, "
              f"needs device >= {manifest.min_device_version}, {len(manifest.files)} files checked")
        for sign, entry in manifest.models.items():
            print(f"  {sign.value}: {entry.model}")
    if args.public_key is None:
        print("  signature not checked: pass --public-key KEY to check it as a locked-down device will")
    return 0
