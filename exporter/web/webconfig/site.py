"""An HTTPS listener whose TLS settings are looked up when each connection arrives.

asyncio binds one SSL context to a listening socket for its lifetime. To let a reload
replace the context without closing the socket, connections are accepted as plain TCP
and upgraded with the settings current at that moment; once the handshake is done (and
the client certificate's SANs pass, if pinned) the connection is handed to aiohttp's
HTTP handler as if the socket had been TLS from the start. Connections already
established keep the settings they were made with.

Before the handshake the first record header is read, so that plain HTTP gets Go's
``400`` and bytes that are not TLS are closed on, as Go does; a failed handshake sends
its TLS alert (``handshake.AlertingTls``). Every refused connection is counted
(``tls_handshake``) and noted at debug level at most once per ten seconds.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from exporter.web.httpguard import ConnectionGuard, RateLimitedNote
from exporter.web.webconfig.handshake import (
    PLAIN_HTTP_ANSWER,
    RECORD_HEADER,
    AlertingTls,
    FirstRecord,
    classify,
)
from exporter.web.webconfig.tls import TlsSettings

log = logging.getLogger("exporter.web")


class _Early(asyncio.Protocol):
    """The TLS side of a connection from the end of its handshake to the hand-over.

    Keeps what arrives meanwhile (a request sent along with the client's Finished
    message, an end of file, the connection's loss) for the HTTP handler.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []
        self._eof = False
        self._lost: tuple[Exception | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)

    def eof_received(self) -> bool:
        self._eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = (exc,)

    @property
    def usable(self) -> bool:
        return self.transport is not None and self._lost is None

    def hand_over(self, app: asyncio.Protocol) -> None:
        tls = self.transport
        assert tls is not None
        tls.set_protocol(app)
        app.connection_made(tls)
        for chunk in self._chunks:
            app.data_received(chunk)
        self._chunks.clear()
        if self._eof and not app.eof_received():
            tls.close()


class _Handshake(asyncio.Protocol):
    """One accepted connection until it is handed to the HTTP handler, or refused.

    This protocol reads the first record header on the plain socket; a TLS client's
    bytes are then passed to the TLS protocol, which takes the socket over.
    """

    def __init__(self, site: TlsSite) -> None:
        self._site = site
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._timer: asyncio.TimerHandle | None = None
        self._early: _Early | None = None
        self._settings: TlsSettings | None = None
        self._timed_out = False
        self._finished = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._site.pending.add(self)
        timeout = self._site.handshake_timeout
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        self._head += data
        if len(self._head) < RECORD_HEADER:
            return
        kind = classify(self._head)
        if kind is FirstRecord.TLS:
            self._start_tls()
            return
        assert self._transport is not None
        if kind is FirstRecord.PLAIN_HTTP:
            self._transport.write(PLAIN_HTTP_ANSWER)
        self._refuse(kind.value)
        self._transport.close()

    def eof_received(self) -> bool:
        self._refuse("closed before the handshake")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._early is None:  # still reading the first bytes
            self._refuse("timeout" if self._timed_out else "closed before the handshake")

    def _start_tls(self) -> None:
        transport = self._transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        self._settings = self._site.settings()
        self._early = _Early()
        waiter: asyncio.Future[None] = loop.create_future()
        # The handshake's deadline is this connection's timer, started when it was accepted.
        tls = AlertingTls(loop, self._early, self._settings.context, waiter, server_side=True)
        waiter.add_done_callback(self._handshake_done)
        transport.set_protocol(tls)
        tls.connection_made(transport)
        head = memoryview(self._head)
        self._head = b""
        while head:
            buf = tls.get_buffer(len(head))
            n = min(len(buf), len(head))
            buf[:n] = head[:n]
            head = head[n:]
            tls.buffer_updated(n)

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        early, settings = self._early, self._settings
        assert early is not None and settings is not None
        exc = None if waiter.cancelled() else waiter.exception()
        tls = early.transport
        if exc is not None or tls is None:
            self._refuse(_reason(exc, self._timed_out))
            return
        self._finish()
        if not early.usable:  # gone right after its handshake
            return
        if not settings.client_allowed(tls.get_extra_info("peercert")):
            self._site.note("client certificate has none of client_allowed_sans", peer=_peer(tls))
            self._site.on_refused("client_san")
            tls.abort()
            return
        early.hand_over(self._site.protocol_factory())

    def _expire(self) -> None:
        self._timed_out = True
        if self._transport is not None:
            self._transport.abort()

    def _refuse(self, reason: str) -> None:
        if self._finished:
            return
        self._finish()
        self._site.note("TLS handshake failed", peer=_peer(self._transport), reason=reason)
        self._site.on_refused("tls_handshake")

    def _finish(self) -> None:
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
        self._site.pending.discard(self)

    def abort(self) -> None:
        self._finish()
        if self._transport is not None:
            self._transport.abort()


def _reason(exc: BaseException | None, timed_out: bool) -> str:
    """A short reason for the log: OpenSSL's (``NO_SHARED_CIPHER``…), or what else ended it."""
    if timed_out or isinstance(exc, ConnectionAbortedError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.strerror or type(exc).__name__)
    if exc is None or isinstance(exc, ConnectionError):
        return "closed during the handshake"
    return type(exc).__name__


class _Refused(asyncio.Protocol):
    """A connection past the cap: closed as soon as it is accepted."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


class TlsSite(web.BaseSite):
    """Like aiohttp's TCPSite with an SSL context, except that ``settings()`` is read per connection."""

    __slots__ = ("_guard", "_host", "_port", "handshake_timeout", "note", "on_refused", "pending", "settings")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        settings: Callable[[], TlsSettings],
        on_refused: Callable[[str], None],
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(runner)
        self._guard = guard
        self._host = host
        self._port = port
        self.settings = settings
        self.on_refused = on_refused
        self.pending: set[_Handshake] = set()
        self.handshake_timeout = guard.limits.tls_handshake_timeout
        self.note = RateLimitedNote(log)

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    def protocol_factory(self) -> asyncio.Protocol:
        """The HTTP handler a connection gets once its handshake is done, watched by the guard."""
        server = self._runner.server
        assert server is not None
        return self._guard.wrap(server)()

    def _accept(self) -> asyncio.Protocol:
        # Handshakes in progress count against the connection cap too.
        if not self._guard.has_room(len(self.pending)):
            return _Refused()
        return _Handshake(self)

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            self._accept, self._host, self._port, backlog=self._backlog
        )
        self._guard.start()

    async def stop(self) -> None:
        await self._guard.stop()
        for handshake in list(self.pending):
            handshake.abort()
        self.pending.clear()
        await super().stop()
