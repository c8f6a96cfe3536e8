"""``python -m convert verify PACK [--public-key KEY]``: the device's own checks
(device.install.verify_pack: schema, checksums, signature, self-test), printed."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from device.cliutil import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pack", type=Path, help="model pack file")
    parser.add_argument("--public-key", type=Path, default=None,
                        help="Ed25519 public key the device holds; without it the signature is not checked")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads for the self-test")


def run(args: argparse.Namespace) -> int:
    from device.install import verify_pack

    if not args.pack.is_file():
        raise UserError(f"{args.pack}: pack file not found")
    if args.public_key is not None and not args.public_key.is_file():
        raise UserError(f"{args.public_key}: public key not found")
    report = verify_pack(args.pack, public_key=args.public_key, threads=args.threads)
    if not report.ok:
        print(f"{args.pack}: FAILED, the device would refuse it ({len(report.problems)} problem(s)):")
        for problem in report.problems:
            print(f"  - {problem}")
        return 1
    manifest = report.manifest
    print(f"{args.pack}: ok")
    if manifest is not None:
        print(f"  pack version {manifest.pack_version}, made {manifest.created} by "
              f"{manifest.software_version}, needs device >= {manifest.min_device_version}")
        for sign, entry in manifest.models.items():
            print(f"  {sign.value}: {entry.model}")
        print(f"  {len(manifest.files)} files checked, self-test passed "
              f"(tolerance {manifest.selftest_tolerance})")
    print("  signature: " + ("valid" if args.public_key else "not checked (no --public-key)"))
    return 0
