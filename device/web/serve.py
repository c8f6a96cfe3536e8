"""Binding the dashboard's server: waitress, with the HTTPS front ahead of it for TLS.

Plain HTTP (loopback) is waitress alone. HTTPS, needed beyond loopback, is
device.web.tlsfront (TLS on an asyncio event loop) in front of the same waitress
bound to an ephemeral loopback port: waitress reads whole requests on its own event
loop before a worker thread sees them, so neither a slow handshake nor a slow header
holds a thread, and the live preview keeps its small output buffer (frames are
skipped for a slow viewer, not queued) whichever way it is served. The limits are
the config's ``web.limits`` (device.config.ServerLimits).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from device.web.tls import TlsSetup

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from device.config import ServerLimits

log = logging.getLogger(__name__)

#: Connections the kernel holds while every thread is busy (a burst of page loads).
BACKLOG = 128
#: Bytes waitress may hold for one client before the app's write waits: small, so a slow
#: preview viewer skips frames (device.scan.preview) instead of queueing seconds of them.
STREAM_BUFFER_BYTES = 256 * 1024


@dataclass(frozen=True)
class BoundServer:
    """A server listening on ``port``: ``serve()`` blocks until ``stop()``."""

    serve: Callable[[], None]
    stop: Callable[[], None]
    port: int
    https: bool


def waitress_options(limits: ServerLimits) -> dict[str, int | float | str]:
    """waitress.create_server options for ``limits`` (the config's web.limits)."""
    return {"threads": limits.threads, "connection_limit": limits.connection_limit,
            "channel_timeout": limits.idle_timeout_s, "backlog": BACKLOG,
            "outbuf_high_watermark": STREAM_BUFFER_BYTES, "ident": "atopiscan"}


def tls_context(tls: TlsSetup) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.cert), str(tls.key))
    return context


def make_server(app: WSGIApplication, host: str, port: int, tls: TlsSetup | None,
                limits: ServerLimits) -> BoundServer:
    """Bind now (OSError when the address is busy or not this machine's)."""
    from waitress import create_server

    if tls is None:
        plain = create_server(app, host=host, port=port, **waitress_options(limits))
        return BoundServer(plain.run, plain.close, int(plain.effective_port), False)
    from device.web.tlsfront import PeerMap, TlsFront

    listener = socket.create_server((host, port), family=_family(host), backlog=BACKLOG,
                                    reuse_port=False)
    peers = PeerMap()
    try:
        backend = create_server(peers.wsgi(app), host="127.0.0.1", port=0, url_scheme="https",
                                **waitress_options(limits))
    except OSError:
        listener.close()
        raise
    front = TlsFront(listener, tls_context(tls), int(backend.effective_port), limits, peers)

    # waitress keeps the main thread (SIGTERM's SystemExit lands there, as with plain HTTP);
    # the front's event loop runs beside it and ends its connections when stopped.
    thread = threading.Thread(target=front.serve, name="tls-front", daemon=True)

    def serve() -> None:
        thread.start()
        backend.run()

    def stop() -> None:
        front.stop()
        if thread.is_alive():
            thread.join(5)
        backend.close()

    return BoundServer(serve, stop, front.port, True)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
