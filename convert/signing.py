"""Ed25519 keys for signing model packs.

The workstation holds the private key (PEM, PKCS#8, mode 0600); each device
holds the public key (PEM, SubjectPublicKeyInfo) named in its config
(``packs.public_key``). A pack's ``manifest.sig`` is the raw 64-byte Ed25519
signature of the exact bytes of its ``manifest.json``; the manifest lists the
sha256 of every other file, so one signature covers the whole pack.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core.atomic import atomic_write_bytes
from device.packs.check import SigningKeyError, load_public_key

log = logging.getLogger(__name__)

# The public key is read by the device's own loader (one loader, one set of messages).
__all__ = ["SigningKeyError", "keygen", "load_private_key", "load_public_key", "sign_bytes"]

PRIVATE_KEY_NAME = "pack_signing_key.pem"
PUBLIC_KEY_NAME = "pack_signing_key.pub.pem"
SIGNATURE_SIZE = 64


def keygen(out_dir: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a fresh key pair into ``out_dir``; return (private path, public path).

    Refuses to overwrite an existing private key unless ``overwrite``: losing it
    means every device must be given a new public key.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out_dir / PRIVATE_KEY_NAME, out_dir / PUBLIC_KEY_NAME
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise SigningKeyError(
            f"{priv_path} or {pub_path} already exists; pick another --out folder "
            "(replacing a key means re-provisioning every device)"
        )
    key = Ed25519PrivateKey.generate()
    priv_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Create the private key file with 0600 from the start: no window where it is readable.
    atomic_write_bytes(priv_path, priv_pem, mode=0o600)
    atomic_write_bytes(pub_path, pub_pem)
    log.info("wrote private key %s (keep it secret) and public key %s", priv_path, pub_path)
    return priv_path, pub_path


def _read(path: Path, what: str) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SigningKeyError(f"{path}: {what} not found; make one with `python -m convert keygen`") from exc
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read {what} ({exc})") from exc


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An unencrypted Ed25519 private key in PEM (PKCS#8) or raw 32-byte form."""
    data = _read(path, "private signing key")
    try:
        if len(data) == 32:
            return Ed25519PrivateKey.from_private_bytes(data)
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"{path}: not an unencrypted PEM private key ({exc}); pass the "
            f"{PRIVATE_KEY_NAME} written by `python -m convert keygen`"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: is a {type(key).__name__}, not an Ed25519 private key")
    return key


def sign_bytes(data: bytes, private_key: Path | Ed25519PrivateKey) -> bytes:
    """Raw 64-byte Ed25519 signature of ``data``."""
    key = private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    return key.sign(data)
