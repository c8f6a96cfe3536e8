"""The dashboard's TLS certificate: the one named in the config, or a self-signed one
made at first start.

A clinic rarely has a certificate authority for a device on its LAN, so, like
camera appliances such as Frigate, the device makes its own certificate
(ECDSA P-256, valid ten years) in ``<data_dir>/tls/`` and shows its SHA-256
fingerprint on the console and the status page: a laptop compares it once
(or pins it) instead of trusting any certificate it is shown.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from device.core.atomic import atomic_write_bytes

if TYPE_CHECKING:  # cryptography is imported where a certificate is made or read
    from cryptography import x509

    from device.config import TlsConfig

log = logging.getLogger(__name__)

TLS_DIR = "tls"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
SELF_SIGNED_DAYS = 3650
#: A self-made certificate this close to its end is replaced at the next start.
RENEW_BEFORE = dt.timedelta(days=30)


class TlsError(ValueError):
    """The certificate or key cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class TlsSetup:
    cert: Path
    key: Path
    fingerprint_sha256: str  # "AB:CD:..." as browsers show it
    self_signed: bool
    not_after: str
    generated: bool = False  # made by this start

    def to_dict(self) -> dict[str, str | bool]:
        return {"cert": str(self.cert), "fingerprint_sha256": self.fingerprint_sha256,
                "self_signed": self.self_signed, "not_after": self.not_after}


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER bytes, as colon-separated upper-case hex."""
    from cryptography.hazmat.primitives.serialization import Encoding

    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _names(host: str, device_name: str) -> list[x509.GeneralName]:
    """Subject alternative names: this machine's names and the address it serves."""
    from cryptography import x509

    dns = {"localhost", socket.gethostname()}
    dns |= {f"{n}.local" for n in (socket.gethostname(),) if "." not in n}  # mDNS on a Pi
    if device_name.replace("-", "").isalnum():
        dns.add(device_name)
    ips = {ipaddress.ip_address("127.0.0.1")}
    try:
        ip = ipaddress.ip_address(host)
        if not ip.is_unspecified:
            ips.add(ip)
    except ValueError:
        if host:
            dns.add(host)
    return ([x509.DNSName(n) for n in sorted(dns) if n]
            + [x509.IPAddress(i) for i in sorted(ips, key=str)])


def make_self_signed(cert_path: Path, key_path: Path, *, host: str, device_name: str) -> None:
    """Write a new key (mode 0600) and a self-signed certificate for it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"atopiscan {device_name}"[:64])])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(_names(host, device_name)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path, data, mode in ((key_path, key_pem, 0o600),
                             (cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)):
        atomic_write_bytes(path, data, mode=mode)  # the key first: no certificate without it


def load_pair(cert_path: Path, key_path: Path) -> x509.Certificate:
    """The certificate, after checking both files load and the key belongs to it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsError(f"{cert_path}: not a readable PEM certificate ({exc}); point tls.cert "
                       "at the certificate file, or remove tls.cert/tls.key to use a "
                       "self-signed one") from exc
    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsError(f"{key_path}: not a readable unencrypted PEM private key ({exc}); "
                       "point tls.key at the certificate's key (without a passphrase)") from exc
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.PEM, pub)
            != cert.public_key().public_bytes(serialization.Encoding.PEM, pub)):
        raise TlsError(f"{key_path} is not the key of {cert_path}; give the matching pair")
    return cert


def ensure_certificate(tls: TlsConfig, data_dir: Path, *, host: str, device_name: str) -> TlsSetup:
    """The certificate to serve (``tls`` is the config's web.tls): the configured pair,
    checked; else the self-signed pair in ``data_dir/tls``, made when missing or expiring."""
    if tls.cert is not None:
        cert = load_pair(tls.cert, tls.key)
        return TlsSetup(Path(tls.cert), Path(tls.key), fingerprint(cert), False,
                        cert.not_valid_after_utc.isoformat())
    folder = Path(data_dir) / TLS_DIR
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    generated = False
    cert = None
    if cert_path.exists() and key_path.exists():
        try:
            cert = load_pair(cert_path, key_path)
        except TlsError as exc:
            log.warning("the self-signed certificate is unusable (%s); making a new one", exc)
        else:
            if cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < RENEW_BEFORE:
                log.warning("the self-signed certificate ends on %s; making a new one",
                            cert.not_valid_after_utc.date())
                cert = None
    if cert is None:
        make_self_signed(cert_path, key_path, host=host, device_name=device_name)
        cert, generated = load_pair(cert_path, key_path), True
        log.info("made a self-signed TLS certificate in %s", folder)
    return TlsSetup(cert_path, key_path, fingerprint(cert), True,
                    cert.not_valid_after_utc.isoformat(), generated)
