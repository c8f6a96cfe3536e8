"""The HTTPS front: TLS ends here, in one asyncio thread, and each request goes on to the
dashboard's waitress server on a loopback port (device.web.serve).

Why not a threaded TLS server: cheroot does each handshake in its accept loop
(cherrypy/cheroot#748), so one socket that never starts its handshake stops every new
connection for its timeout, and each slow client holds a worker thread. Here:

- handshakes run concurrently on the event loop (``ssl_handshake_timeout``), never on
  the accept path;
- a client must finish its handshake, and then send the whole header of its first
  request, within ``handshake_timeout_s`` and ``header_timeout_s``: a byte-drip client
  is dropped, and it never holds a worker thread (waitress dispatches only complete
  requests to its threads);
- one client address holds at most ``max_connections_per_client`` connections and all
  of them at most ``connection_limit``; more are closed at once;
- plain HTTP sent to the HTTPS port is answered with a redirect to https://, not a reset.

The client's address reaches the app (the login limit counts per address) through
``PeerMap``: the front records which loopback port carries which client, and
``PeerMap.wsgi`` puts it in REMOTE_ADDR. Nothing a client sends can set it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from device.config import ServerLimits

log = logging.getLogger(__name__)

#: The first byte of every TLS connection (a handshake record).
TLS_HANDSHAKE = 0x16
#: Largest header of a first request (request line and fields); waitress's own limit is 256 KB.
MAX_HEADER_BYTES = 64 * 1024
CHUNK = 64 * 1024
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")


class PeerMap:
    """Loopback port of a forwarded connection → the client address behind it."""

    def __init__(self) -> None:
        self._by_port: dict[int, str] = {}

    def add(self, port: int, addr: str) -> None:
        self._by_port[port] = addr

    def drop(self, port: int) -> None:
        self._by_port.pop(port, None)

    def wsgi(self, app: WSGIApplication) -> WSGIApplication:
        """The app, seeing the client's address instead of the front's loopback one."""

        def with_client_address(environ: WSGIEnvironment,
                                start_response: StartResponse) -> Iterable[bytes]:
            try:
                addr = self._by_port.get(int(environ.get("REMOTE_PORT") or 0))
            except ValueError:
                addr = None
            if addr is not None and environ.get("REMOTE_ADDR") in ("127.0.0.1", "::1"):
                environ["REMOTE_ADDR"] = addr
            return app(environ, start_response)

        return with_client_address


class TlsFront:
    """Listens on ``listener`` (bound, listening) and forwards to 127.0.0.1:``backend_port``."""

    def __init__(self, listener: socket.socket, context: ssl.SSLContext, backend_port: int,
                 limits: ServerLimits, peers: PeerMap) -> None:
        self.listener = listener
        self.context = context
        self.backend_port = backend_port
        self.limits = limits
        self.peers = peers
        self.per_client: Counter[str] = Counter()
        self.refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    # -- running ---------------------------------------------------------------------------
    def serve(self) -> None:
        """Block, serving, until ``stop()``."""
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._accept_loop())
        finally:  # also on SIGTERM's SystemExit: end every connection before the loop
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.listener.close()
            loop.close()

    def stop(self) -> None:
        self._stopped.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: None)  # wake the accept loop

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        self.listener.setblocking(False)
        tasks: set[asyncio.Task] = set()
        while not self._stopped.is_set():
            try:
                conn, addr = await asyncio.wait_for(loop.sock_accept(self.listener), 0.5)
            except asyncio.TimeoutError:
                continue
            except OSError as exc:  # EMFILE and the like: wait, do not spin
                log.warning("HTTPS accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._client(conn, str(addr[0])))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in list(tasks):
            task.cancel()

    async def _client(self, conn: socket.socket, addr: str) -> None:
        total = sum(self.per_client.values())
        if (self.per_client[addr] >= self.limits.max_connections_per_client
                or total >= self.limits.connection_limit):
            self.refused += 1
            if self.refused % 100 == 1:  # a flood is logged, not one line per socket
                log.warning("HTTPS connection from %s closed: %d open from it, %d in all "
                            "(web.limits)", addr, self.per_client[addr], total)
            conn.close()
            return
        self.per_client[addr] += 1
        handed = False  # once TLS starts, the transport owns (and closes) the socket
        try:
            loop = asyncio.get_running_loop()
            first = await asyncio.wait_for(_peek_first_byte(loop, conn),
                                           self.limits.handshake_timeout_s)
            if first == TLS_HANDSHAKE:
                handed = True
                await self._serve_tls(conn, addr)
            elif first is not None:
                await asyncio.wait_for(_redirect_plain_http(loop, conn, self.port),
                                       self.limits.header_timeout_s)
        except (OSError, asyncio.TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # a client that went away or ran out of time: nothing to tell anyone
        finally:
            self.per_client[addr] -= 1
            if self.per_client[addr] <= 0:
                del self.per_client[addr]
            if not handed:
                conn.close()

    async def _serve_tls(self, conn: socket.socket, addr: str) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol, conn, ssl=self.context,
            ssl_handshake_timeout=self.limits.handshake_timeout_s)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                              self.limits.header_timeout_s)
            except asyncio.TimeoutError:
                writer.write(_plain_reply(408, "Request Timeout",
                                          "the request header took too long; try again"))
                return
            except asyncio.LimitOverrunError:
                writer.write(_plain_reply(431, "Request Header Fields Too Large",
                                          "the request header is too large"))
                return
            await self._forward(reader, writer, head, addr)
        finally:
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       head: bytes, addr: str) -> None:
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        port = int(b_writer.get_extra_info("sockname")[1])
        self.peers.add(port, addr)
        try:
            b_writer.write(head)
            up = asyncio.ensure_future(_pump(reader, b_writer, eof=True))
            # Until the app closes its side (Connection: close, its idle timeout, the client's
            # end passed on by ``up``) or a write to the client fails.
            await _pump(b_reader, writer)
            up.cancel()
        finally:
            self.peers.drop(port)
            b_writer.close()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, *,
                eof: bool = False) -> None:
    """Copy until end of file (then pass it on when ``eof``); ``drain`` makes a slow reader
    slow the writer (the live preview's small buffer then skips frames, not queues them)."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if eof and dst.can_write_eof():
            dst.write_eof()
    except (OSError, ssl.SSLError):
        if eof:
            dst.close()


async def _peek_first_byte(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> int | None:
    """The connection's first byte, left unread (None when it closes without one)."""
    while True:
        ready = loop.create_future()
        loop.add_reader(conn.fileno(), _set_once, ready)
        try:
            await ready
        finally:
            loop.remove_reader(conn.fileno())
        try:
            data = conn.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        return data[0] if data else None


def _set_once(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def _redirect_plain_http(loop: asyncio.AbstractEventLoop, conn: socket.socket,
                               port: int) -> None:
    """Answer a plain-HTTP request on the HTTPS port: 301 to the same path over https."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 8192:
        chunk = await loop.sock_recv(conn, 4096)
        if not chunk:
            break
        data += chunk
    lines = data.split(b"\r\n")
    parts = lines[0].split(b" ")
    path = parts[1].decode("ascii", "replace") if len(parts) >= 2 else "/"
    host = ""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            host = value.strip().decode("ascii", "replace")
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not path.startswith("/") or path.startswith("//") or not path.isprintable():
        path = "/"
    if _HOST.match(host):
        location = f"https://{host}:{port}{path}"
        reply = _plain_reply(301, "Moved Permanently",
                             f"this port speaks HTTPS: open {location}", location=location)
    else:
        reply = _plain_reply(400, "Bad Request",
                             f"this port speaks HTTPS: open https://<this device>:{port}/")
    await loop.sock_sendall(conn, reply)


def _plain_reply(status: int, reason: str, text: str, *, location: str | None = None) -> bytes:
    body = (text + "\n").encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close"]
    if location:
        head.append(f"Location: {location}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
