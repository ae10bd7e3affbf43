"""An HTTPS listener whose TLS settings are looked up when each connection arrives.

asyncio binds one SSL context to a listening socket for its lifetime. To let a reload
replace the context without closing the socket, connections are accepted as plain TCP
and upgraded with ``loop.start_tls`` using the settings current at that moment; once
the handshake is done (and the client certificate's SANs pass, if pinned) the
connection is handed to aiohttp's HTTP handler as if the socket had been TLS from the
start. Connections already established keep the settings they were made with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from exporter.httpguard import ConnectionGuard
from exporter.webconfig.tls import TlsSettings

log = logging.getLogger("exporter.web")

# A client that has not finished its handshake by then is dropped.
HANDSHAKE_TIMEOUT = 10.0


class _Handshake(asyncio.Protocol):
    """One accepted connection until its TLS handshake is done; then the HTTP handler takes over."""

    def __init__(self, site: TlsSite) -> None:
        self._site = site
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._started = False
        self._app: asyncio.Protocol | None = None
        # What arrives between the end of the handshake and the hand-over (a request
        # sent with the client's Finished message) is kept for the HTTP handler.
        self._early: list[bytes] = []
        self._eof = False
        self._lost: tuple[Exception | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # nothing may be read before the handshake owns the socket
        self._transport = transport
        self._task = asyncio.get_running_loop().create_task(self._upgrade(transport))
        self._site.pending.add(self)

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        settings = self._site.settings()
        self._started = True
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, self, settings.context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError; start_tls closed the socket
            log.debug("TLS handshake failed", extra={"peer": _peer(transport), "error": str(exc)})
            return
        finally:
            self._site.pending.discard(self)
        if tls is None:
            return
        if not settings.client_allowed(tls.get_extra_info("peercert")):
            log.debug("client certificate has none of client_allowed_sans", extra={"peer": _peer(transport)})
            self._site.on_refused("client_san")
            tls.abort()
            return
        app = self._site.protocol_factory()
        self._app = app
        tls.set_protocol(app)
        app.connection_made(tls)
        for chunk in self._early:
            app.data_received(chunk)
        self._early.clear()
        if self._eof and not app.eof_received():
            tls.close()
        if self._lost is not None:
            app.connection_lost(self._lost[0])

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._app is not None:
            self._app.data_received(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool:
        if self._app is not None:
            return bool(self._app.eof_received())
        self._eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._app is not None:
            self._app.connection_lost(exc)
            return
        self._lost = (exc,)
        if not self._started and self._task is not None:
            # Gone before the handshake began: there is nothing to wait for.
            self._task.cancel()
            self._site.pending.discard(self)


class _Refused(asyncio.Protocol):
    """A connection past the cap: closed as soon as it is accepted."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


class TlsSite(web.BaseSite):
    """Like aiohttp's TCPSite with an SSL context, except that ``settings()`` is read per connection."""

    __slots__ = ("_guard", "_host", "_port", "on_refused", "pending", "settings")

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
