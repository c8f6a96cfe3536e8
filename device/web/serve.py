"""Binding the dashboard's server: waitress for plain HTTP on loopback, cheroot for HTTPS.

waitress cannot terminate TLS itself, and the live preview's tuning (its output
buffer, device.cli.run.server_options) is waitress's; so loopback keeps waitress,
and HTTPS, needed beyond loopback, is served by cheroot (CherryPy's WSGI server,
maintained) through Python's ``ssl`` module with the same thread count. cheroot
writes a response straight to the socket, so a slow viewer makes the stream's
write wait, as the small waitress buffer does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device.web.tls import TlsSetup

log = logging.getLogger(__name__)

#: Connections the kernel holds while every thread is busy (a burst of page loads).
BACKLOG = 128
#: Seconds a connection may sit idle inside a request before cheroot drops it.
SOCKET_TIMEOUT_S = 30


@dataclass(frozen=True)
class BoundServer:
    """A server listening on ``port``: ``serve()`` blocks until ``stop()``."""

    serve: Callable[[], None]
    stop: Callable[[], None]
    port: int
    https: bool


def make_server(app: Any, host: str, port: int, tls: TlsSetup | None, *,
                threads: int, waitress_options: dict[str, Any]) -> BoundServer:
    """Bind now (OSError when the address is busy or not this machine's)."""
    if tls is None:
        from waitress import create_server

        plain = create_server(app, host=host, port=port, **waitress_options)
        return BoundServer(plain.run, plain.close, int(plain.effective_port), False)
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    server = wsgi.Server((host, port), app, numthreads=threads, server_name="atopiscan",
                         timeout=SOCKET_TIMEOUT_S, request_queue_size=BACKLOG)
    server.software = "atopiscan"  # the Server header: no version for a scanner to match
    server.error_log = _error_log  # into logging (journal, status page), not bare stderr
    server.ssl_adapter = BuiltinSSLAdapter(str(tls.cert), str(tls.key))
    server.prepare()  # binds the socket now, so a busy port is reported before serving
    return BoundServer(server.serve, server.stop, int(server.bind_addr[1]), True)


def _error_log(msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
    """cheroot's error hook: a client speaking plain HTTP to the HTTPS port, a dropped
    connection, or an error inside the server (with its traceback)."""
    log.log(level, "%s", msg, exc_info=traceback)
