"""Limits on the exporter's own HTTP connections, so that no client can exhaust the
process's memory or file descriptors, or flood its log.

aiohttp alone keeps an idle keep-alive connection for about an hour, never closes a
connection whose request does not finish arriving, accepts as many connections as
the kernel hands it and lets each hold up to a megabyte of headers. Here:

- a request's headers are bounded (count and size, ``exporter.limits.ConnectionLimits``);
- a connection must complete its request within ``header_timeout`` of connecting,
  or of the first byte of a later request on the same connection;
- an idle keep-alive connection is closed after ``idle_timeout``;
- past ``max_connections`` open connections a new one is closed at once;
- malformed requests are the client's problem: they get their 400, and the log gets
  at most one debug line per ``LOG_EVERY`` seconds, never a traceback.

The limits are enforced by a thin protocol around aiohttp's own request handler
(``GuardedSite``) and a middleware that tells it when a request has arrived whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler

from exporter.limits import ConnectionLimits

log = logging.getLogger("exporter.http")

LOG_EVERY = 10.0
_SWEEP_SECONDS = 0.5

_NEW, _READING, _BUSY, _IDLE = range(4)


def handler_args(limits: ConnectionLimits) -> dict[str, Any]:
    """What aiohttp's request handler takes of ``limits``."""
    return {
        "max_headers": limits.max_headers,
        "max_field_size": limits.max_field_size,
        "max_line_size": limits.max_line_size,
        "keepalive_timeout": limits.idle_timeout,
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
    """Turn aiohttp's report of a malformed request (an error with a traceback) into a
    rate-limited one-line debug note; the server's own failures stay errors."""

    def __init__(self) -> None:
        super().__init__()
        self.note = RateLimitedNote(log)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and (exc.code or 400) < 500:
            self.note("malformed request refused", reason=type(exc).__name__)
            return False
        return True


_CLIENT_ERRORS = logging.getLogger("exporter.http.server")
_CLIENT_ERRORS.addFilter(_ClientErrorFilter())


class _Guarded(asyncio.Protocol):
    """aiohttp's request handler, watched: when did the request in progress start?"""

    def __init__(self, inner: RequestHandler, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self.state = _NEW
        self.since = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self.guard.admit(self):
            transport.abort()
            return
        self.transport = transport
        self.since = time.monotonic()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self.state == _IDLE:
            self.state, self.since = _READING, time.monotonic()
        self.inner.data_received(data)

    def eof_received(self) -> None:
        if self.transport is not None:
            self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.guard.release(self)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ConnectionGuard:
    """The open connections of one server, and the sweep that closes overdue ones."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._open: dict[RequestHandler, _Guarded] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._note = RateLimitedNote(log)
        self.refused = 0
        self.timed_out = 0

    def wrap(self, factory: Callable[[], RequestHandler]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(factory(), self)

    def has_room(self, pending: int = 0) -> bool:
        """Whether one more connection fits, with ``pending`` others not yet handed to HTTP."""
        if len(self._open) + pending < self.limits.max_connections:
            return True
        self.refused += 1
        self._note("connection refused: too many open", limit=self.limits.max_connections)
        return False

    def admit(self, conn: _Guarded) -> bool:
        if len(self._open) >= self.limits.max_connections:
            self.refused += 1
            self._note("connection refused: too many open", limit=self.limits.max_connections)
            return False
        self._open[conn.inner] = conn
        return True

    def release(self, conn: _Guarded) -> None:
        self._open.pop(conn.inner, None)

    def middleware(self) -> Middleware:
        @web.middleware
        async def mark(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            conn = self._open.get(request.protocol)
            if conn is not None:
                conn.state = _BUSY
            try:
                return await handler(request)
            finally:
                if conn is not None:
                    conn.state, conn.since = _IDLE, time.monotonic()

        return mark

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            self.close_overdue(time.monotonic())

    def close_overdue(self, now: float) -> None:
        header, idle = self.limits.header_timeout, self.limits.idle_timeout
        for conn in list(self._open.values()):
            late = (conn.state in (_NEW, _READING) and now - conn.since > header) or (
                conn.state == _IDLE and now - conn.since > idle
            )
            if late and conn.transport is not None:
                self.timed_out += 1
                self._note("connection closed: request not completed in time", seconds=header)
                conn.transport.abort()


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
