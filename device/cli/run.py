"""``python -m device run``: the device service and its dashboard (device.web.serve).

Options override the config. The dashboard binds 127.0.0.1 unless the config (or
``--host``) says otherwise; beyond loopback it serves HTTPS only (web.tls), with
the configured certificate or a self-signed one made at first start, whose
fingerprint is printed here and shown on the status page. On a first start with
no dashboard users it creates an ``admin`` with a random one-time password,
prints it once on the console and asks for a new one at first login: there is
never a default password.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.config import is_loopback, load_config_arg
from device.core.cliutil import UserError
from device.core.errors import storage_error

log = logging.getLogger(__name__)

__all__ = ["is_loopback", "load", "prepare", "run", "setup_banner"]

SETUP_USER = "admin"
def server_options(limits: Any = None) -> dict[str, Any]:
    """waitress.create_server options of the dashboard for ``limits`` (web.limits; the
    defaults when None): tests and the stream bench serve the app as ``run`` does."""
    from device.config import ServerLimits
    from device.web.serve import waitress_options

    return waitress_options(limits or ServerLimits())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path,
                        help="device config (YAML); default: the packaged default_config.yaml")
    parser.add_argument("--host", help="address to listen on (overrides web.host)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides web.port)")
    parser.add_argument("--data-dir", type=Path,
                        help="scan database, users and secret key folder (overrides storage.data_dir)")


def load(args: argparse.Namespace) -> Any:
    """The config with the command-line overrides applied."""
    config = load_config_arg(args.config)
    if args.host:
        config.web.host = args.host
    if args.port is not None:
        if not 1 <= args.port <= 65535:
            raise UserError(f"--port {args.port}: use a port between 1 and 65535")
        config.web.port = args.port
    if args.data_dir:
        config.storage.data_dir = Path(args.data_dir).expanduser().resolve()
    return config


@dataclass
class Prepared:
    app: Any
    service: Any
    host: str
    port: int
    setup_password: str | None
    tls: Any = None  # device.web.tls.TlsSetup when serving HTTPS

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"


def prepare(config: Any) -> Prepared:
    """Open the store, users and service and build the app (everything but serving)."""
    from device.export.work import sweep_and_audit
    from device.scan.service import Service
    from device.store.purger import Purger
    from device.web import create_app, default_store
    from device.web.tls import ensure_certificate
    from device.web.users import UserStore

    data_dir = Path(config.storage.data_dir).expanduser()
    users = UserStore.in_data_dir(data_dir)
    password = users.ensure_setup_user(SETUP_USER)
    store = default_store(config, data_dir)  # keep_images, keep_frames, retention_days
    sweep_and_audit(data_dir, "service")  # work folders of exports killed before this start
    purger = Purger(store)
    purger.start()  # storage.retention_days: purge now and then daily
    tls = None
    if config.web.uses_tls:
        tls = ensure_certificate(config.web.tls, data_dir, host=config.web.host,
                                 device_name=config.device_name)
    service = Service.from_config(config)
    app = create_app(config, service=service, store=store, users=users, data_dir=data_dir,
                     tls=tls, purger=purger)
    return Prepared(app, service, config.web.host, config.web.port, password, tls)


def tls_banner(tls: Any) -> str:
    made = "made now, " if tls.generated else ""
    kind = f"self-signed ({made}{tls.cert})" if tls.self_signed else str(tls.cert)
    return "\n".join([
        f"  HTTPS certificate: {kind}",
        f"  SHA-256 fingerprint: {tls.fingerprint_sha256}",
        "  Check that a browser shows this fingerprint before you log in (or pin it).",
    ])


def setup_banner(password: str, url: str) -> str:
    line = "=" * 64
    return "\n".join([
        line,
        "  First start: no dashboard users exist, so one was created.",
        f"  user: {SETUP_USER}    one-time password: {password}",
        f"  Log in at {url} and choose a new password (asked at first login).",
        "  This password is shown only now. Add more users with:",
        "    python -m device adduser NAME --role staff|technician|admin",
        line,
    ])


def _setup_logging(config: Any) -> None:
    root = logging.getLogger()
    root.setLevel(config.logging.level.value)
    if config.logging.file:
        path = Path(config.logging.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


def _exit_cleanly(signum: int, frame: object) -> None:
    log.info("stopping (signal %d)", signum)
    raise SystemExit(0)


def _bind(prepared: Prepared) -> Any:
    """The bound server (device.web.serve): waitress, behind the TLS front for HTTPS."""
    from device.web.serve import make_server

    return make_server(prepared.app, prepared.host, prepared.port, prepared.tls,
                       prepared.app.extensions["atopiscan"].config.web.limits)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    _setup_logging(config)
    try:
        prepared = prepare(config)
    except (OSError, ValueError, sqlite3.Error) as exc:  # a TlsError is a ValueError
        # A read-only or full data folder is said as such (device.core.errors), not as a traceback.
        why = storage_error(exc, f"data folder {config.storage.data_dir}")
        raise UserError(f"cannot start: {why}") from exc
    if prepared.setup_password:
        print(setup_banner(prepared.setup_password, prepared.url), flush=True)
    try:
        # Bind before saying where we listen, so a busy port is one clear line.
        server = _bind(prepared)
    except OSError as exc:
        prepared.service.close()
        raise UserError(
            f"cannot listen on {prepared.host}:{prepared.port} ({exc.strerror or exc}): is another "
            "atopiscan or another server already running there? Stop it, or pick another --port"
        ) from exc
    if not is_loopback(prepared.host):
        log.info("the dashboard listens on %s: reachable from the network, over HTTPS only",
                 prepared.host)
    print(f"atopiscan dashboard on {prepared.url} (Ctrl-C stops it)", flush=True)
    if prepared.tls:
        print(tls_banner(prepared.tls), flush=True)
    # systemd stops the service with SIGTERM: leave through the same path as
    # Ctrl-C, so the camera and the store are closed, and exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server.serve()
    finally:
        server.stop()
        # ends the open streams and the capture thread
        prepared.app.extensions["atopiscan"].scans.close()
        prepared.service.close()
    return 0
