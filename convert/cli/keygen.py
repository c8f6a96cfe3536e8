"""``python -m convert keygen --out DIR``: an Ed25519 key pair for signing packs.

The private key stays on the workstation (mode 0600); copy the public key to each
device and name it in its config (packs.public_key)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from device.core.cliutil import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for the two key files")
    parser.add_argument("--force", action="store_true", help="replace an existing key pair")


def run(args: argparse.Namespace) -> int:
    from convert.signing import SigningKeyError, keygen

    try:
        private, public = keygen(args.out, overwrite=args.force)
    except SigningKeyError as exc:
        raise UserError(str(exc)) from exc
    print(f"private key: {private} (keep secret; pass it to `convert pack --sign-key`)")
    print(f"public key:  {public} (copy to each device; set packs.public_key in its config)")
    return 0
