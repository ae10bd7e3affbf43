"""Limits on the exporter's own HTTP connections, so that no client can exhaust the
process's memory or file descriptors, take every connection slot, or flood its log.

aiohttp alone keeps an idle keep-alive connection for about an hour, never closes a
connection whose request does not finish arriving, accepts as many connections as
the kernel hands it and lets each hold up to a megabyte of headers. Here:

- a request head is bounded (count and size of headers, and ``max_head_bytes`` in
  all), and the parser only sees heads that arrived whole (``exporter.web.httpconn``);
- a connection must complete its request within ``header_timeout`` of connecting,
  or of the first byte of a later request on the same connection;
- an idle keep-alive connection is closed after ``idle_timeout``, and so is one whose
  client has read nothing of its answer for as long;
- one client address (an IPv6 /64) holds at most half of ``max_connections``; past
  ``max_connections`` a new connection evicts the oldest silent, unfinished or idle
  connection of the address holding the most, and is closed at once only if every
  connection is busy answering a request;
- malformed requests are the client's problem: they get their 400, and the log gets
  at most one debug line per ``LOG_EVERY`` seconds, never a traceback.

Every refusal and close is counted by reason (``exporter.web.httpstats``). The limits are
enforced by a thin protocol around aiohttp's own request handler (``GuardedSite``)
and a middleware that tells it when a request has been answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry

from exporter.web.httpconn import Connection, State
from exporter.web.httpstats import HttpStats
from exporter.web.limits import ConnectionLimits

log = logging.getLogger("exporter.http")

LOG_EVERY = 10.0
_SWEEP_SECONDS = 0.5
# How long a refused connection may stay open for its client to read the answer.
REFUSED_GRACE = 2.0


def handler_args(limits: ConnectionLimits) -> dict[str, Any]:
    """What aiohttp's request handler takes of ``limits``."""
    return {
        "max_headers": limits.max_headers,
        "max_field_size": limits.max_field_size,
        "max_line_size": limits.max_line_size,
        # The guard closes idle connections first, and counts them; this is a backstop.
        "keepalive_timeout": limits.idle_timeout + 4 * _SWEEP_SECONDS,
        "logger": _CLIENT_ERRORS,
    }


class RateLimitedNote:
    """Say something at debug level at most once per ``every`` seconds, with a count."""

    def __init__(self, logger: logging.Logger, every: float = LOG_EVERY) -> None:
        self.logger = logger
        self.every = every
        self._next = 0.0
        self._suppressed = 0

    def __call__(self, message: str, **extra: object) -> None:
        now = time.monotonic()
        if now < self._next or not self.logger.isEnabledFor(logging.DEBUG):
            self._suppressed += 1
            return
        self.logger.debug(message, extra={**extra, "suppressed_since_last": self._suppressed})
        self._suppressed = 0
        self._next = now + self.every


class _ClientErrorFilter(logging.Filter):
    """Keep aiohttp's report of a malformed request (an error with a traceback) out of
    the log: the guard counts it and notes it; the server's own failures stay errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, HttpProcessingError) and (exc.code or 400) < 500)


_CLIENT_ERRORS = logging.getLogger("exporter.http.server")
_CLIENT_ERRORS.addFilter(_ClientErrorFilter())


def peer_of(transport: asyncio.BaseTransport) -> str:
    """The client address a connection counts against: an IPv4 address, or an IPv6 /64
    (one host is usually given a whole /64)."""
    peer = transport.get_extra_info("peername")
    host = peer[0] if isinstance(peer, tuple) and peer else ""
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionGuard:
    """The open connections of one server, their peers, and the sweep that closes overdue ones."""

    def __init__(
        self,
        limits: ConnectionLimits,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.stats = HttpStats(lambda: len(self._open), registry)
        self._open: dict[RequestHandler, Connection] = {}
        self._peers: Counter[str] = Counter()
        self._sweeper: asyncio.Task[None] | None = None
        self._note = RateLimitedNote(log)

    @property
    def max_head_bytes(self) -> int:
        return self.limits.max_head_bytes

    def wrap(self, factory: Callable[[], RequestHandler]) -> Callable[[], asyncio.Protocol]:
        return lambda: Connection(factory(), self, self.clock)

    def has_room(self, pending: int = 0) -> bool:
        """Whether one more connection fits, with ``pending`` others not yet handed to
        HTTP (TLS handshakes); makes room by eviction if it can."""
        if len(self._open) + pending < self.limits.max_connections or self._evict():
            return True
        self._refuse("capacity")
        return False

    def admit(self, conn: Connection) -> bool:
        assert conn.transport is not None
        conn.peer = peer_of(conn.transport)
        if self._peers[conn.peer] >= self.limits.max_per_peer:
            self._refuse("peer_share")
            return False
        if len(self._open) >= self.limits.max_connections and not self._evict():
            self._refuse("capacity")
            return False
        self._open[conn.inner] = conn
        self._peers[conn.peer] += 1
        return True

    def release(self, conn: Connection) -> None:
        if self._open.pop(conn.inner, None) is not None:
            self._peers[conn.peer] -= 1
            if self._peers[conn.peer] <= 0:
                del self._peers[conn.peer]

    def closing(self, conn: Connection, reason: str) -> None:
        self.stats.closed(reason)
        self._note("connection closed", reason=reason)

    def _refuse(self, reason: str) -> None:
        self.stats.refused(reason)
        self._note("connection refused", reason=reason, limit=self.limits.max_connections)

    def _evict(self) -> bool:
        """Close the oldest silent, unfinished or idle connection of the peer holding the
        most connections; False if every connection is answering a request."""
        victim = max(
            (c for c in self._open.values() if c.evictable),
            key=lambda c: (self._peers[c.peer], -c.since),
            default=None,
        )
        if victim is None:
            return False
        victim.close("evicted")
        return True

    def middleware(self) -> Middleware:
        @web.middleware
        async def answer(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            conn = self._open.get(request.protocol)
            if conn is not None:
                conn.request_started()
            try:
                response = await handler(request)
                if conn is not None and not response.prepared:
                    # Sent here, so that the connection counts as busy until its answer
                    # is written (a slow reader is then bounded by the send timeout).
                    # A client that went away is noted by aiohttp when it sends again.
                    with contextlib.suppress(ConnectionError):
                        await response.prepare(request)
                        await response.write_eof()
                return response
            finally:
                if conn is not None:
                    conn.request_done()

        return answer

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            self.close_overdue(self.clock())

    def close_overdue(self, now: float) -> None:
        limits = self.limits
        for conn in list(self._open.values()):
            age = now - conn.since
            if conn.state is State.REFUSED:
                if age > REFUSED_GRACE:
                    conn.abort()
            elif conn.send_stalled_since is not None and now - conn.send_stalled_since > limits.idle_timeout:
                conn.close("send_timeout")
            elif conn.state is State.HEAD and age > limits.header_timeout:
                conn.close("header_timeout")
            elif conn.state is State.IDLE and age > limits.idle_timeout:
                conn.close("idle_timeout")


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a ``ConnectionGuard``."""

    __slots__ = ("_guard",)

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, **kw: Any
    ) -> None:
        super().__init__(runner, host, port, **kw)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.wrap(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._guard.limits.tls_handshake_timeout if self._ssl_context else None,
        )
        self._guard.start()

    async def stop(self) -> None:
        await self._guard.stop()
        await super().stop()
