"""The exporter's HTTP server with a web config, run in a thread of the test process.

It is the daemon's own serving path (``make_app``, ``WebSecurity``, the runner's
``_serve`` and the exporter's reload with the web config as a companion) on a loopback
port, without targets, so that each conformance case costs milliseconds and can use
real TLS clients (``ssl`` sockets or httpx) against it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiohttp import web
from cryptography import x509

from exporter.config import load_config
from exporter.engine.daemon import Exporter
from exporter.runner import _serve
from exporter.web.httpguard import ConnectionGuard
from exporter.web.limits import DEFAULT_LIMITS, ConnectionLimits
from exporter.web.server import make_app
from exporter.web.webconfig import WebSecurity

T = TypeVar("T")


class LiveServer:
    def __init__(
        self, tmp_path: Path, web_config: Path | None, limits: ConnectionLimits = DEFAULT_LIMITS
    ) -> None:
        self.web_config = web_config
        self.limits = limits
        self.config = tmp_path / "exporter.yaml"
        self.config.write_text("global: {}\n")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.security: WebSecurity | None = None
        self.exporter = Exporter(self.config)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        if self.web_config is not None:
            self.security = WebSecurity.from_file(self.web_config)
            self.exporter.companions.append(self.security.prepare_reload)
            self.exporter.metrics.registry.register(self.security.collector())
        await self.exporter.start(load_config(self.config))
        guard = ConnectionGuard(self.limits)
        app = make_app(self.exporter, "/metrics", self.security, guard, enable_lifecycle=True)
        self.runner, self.port = await _serve(app, "127.0.0.1", 0, guard, self.security)

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        await self.exporter.stop()
        if self.security is not None:
            self.security.close()

    def start(self) -> LiveServer:
        self.thread.start()
        try:
            self.run(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    def reload(self) -> tuple[bool, str]:
        return self.run(self.exporter.reload())

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handshake(self, ctx: ssl.SSLContext, timeout: float = 5) -> Connected:
        """A TLS connection to the server with ``ctx``; raises ssl.SSLError (or OSError) if refused.

        In TLS 1.3 the server judges the client certificate after the client has finished
        its handshake, so a refusal may only show on the first read: one request is sent
        and its status line read before returning.
        """
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            conn.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = conn.recv(64)
        except BaseException:
            raw.close()
            raise
        if not head:
            conn.close()
            raise ConnectionResetError("the server closed the connection without answering")
        return Connected(conn, head.split(b"\r\n", 1)[0].decode())


@dataclass
class Connected:
    """A TLS connection the server accepted, and the status line of its first answer."""

    sock: ssl.SSLSocket
    status: str

    @property
    def cipher(self) -> str:
        info = self.sock.cipher()
        assert info is not None
        return info[0]

    @property
    def version(self) -> str | None:
        return self.sock.version()

    @property
    def alpn(self) -> str | None:
        return self.sock.selected_alpn_protocol()

    @property
    def server_certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.sock.getpeercert(binary_form=True) or b"")

    def close(self) -> None:
        self.sock.close()


@contextmanager
def live(
    tmp_path: Path, web_config: Path | None, limits: ConnectionLimits = DEFAULT_LIMITS
) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path, web_config, limits).start()
    try:
        yield server
    finally:
        server.stop()


def client_context(
    ca_pem: str | None = None,
    *,
    cert: tuple[Path, Path] | None = None,
    ciphers: str | None = None,
    max_version: ssl.TLSVersion | None = None,
    min_version: ssl.TLSVersion | None = None,
    curve: str | None = None,
) -> ssl.SSLContext:
    """A client context trusting ``ca_pem`` (and only it), optionally with a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_pem is not None:
        ctx.load_verify_locations(cadata=ca_pem)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if max_version is not None:
        ctx.maximum_version = max_version
    if min_version is not None:
        ctx.minimum_version = min_version
    if curve is not None:
        ctx.set_ecdh_curve(curve)
    return ctx


def get(url: str, ctx: ssl.SSLContext | None = None, **kwargs: Any) -> httpx.Response:
    with httpx.Client(verify=ctx if ctx is not None else True, timeout=5) as client:
        return client.get(url, **kwargs)
