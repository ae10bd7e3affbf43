"""The request path over real sockets: what goes out, what comes back, and every failure's reason."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web

from exporter import __version__
from exporter.core.errors import InvalidResponse, UpstreamError
from exporter.upstream.client import Reply, UpstreamStats, VendorClient
from exporter.upstream.failure import Answer, upstream_error
from exporter.upstream.retry import POLL_DEADLINE
from tests import pki
from tests.helpers import counted, counts, free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "auth": request.headers.get("Authorization"),
            "ua": request.headers.get("User-Agent"),
            "accept_encoding": request.headers.get("Accept-Encoding"),
            "cookie": request.headers.get("Cookie"),
            "body": body.decode(),
            "peer": request.transport.get_extra_info("peername")[1] if request.transport else None,
        },
        headers={"Set-Cookie": "session=abc; Path=/", "Date": "Fri, 15 Jan 2027 08:00:00 GMT"},
    )


async def gzipped(request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(b'{"ok": true}'), headers={"Content-Encoding": "gzip"})


async def big(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    await resp.prepare(request)
    for _ in range(64):
        await resp.write(b"[" + b"1," * 1000 + b"1]")
    return resp


async def not_json(request: web.Request) -> web.Response:
    return web.Response(body=b'{"a": ', content_type="application/json")


async def vendor(routes: dict[str, Handler], max_connections: int = 4) -> AsyncIterator[VendorClient]:
    """A client of a vendor served by ``routes`` (under /v1) on loopback."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", "/v1" + path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    client = VendorClient(
        "together", url, "secret-key", max_connections=max_connections, stats=UpstreamStats()
    )
    try:
        yield client
    finally:
        await client.aclose()
        await runner.cleanup()


async def get(
    client: VendorClient, path: str, timeout: float = 2.0, params: dict[str, str] | None = None
) -> Reply:
    return await client.request_json("GET", path, source="s", endpoint=path, timeout=timeout, params=params)


def test_requests_and_answers_pass_through() -> None:
    async def go() -> None:
        async for c in vendor({"/echo": echo, "/gz": gzipped}):
            r = await get(c, "/echo", params={"model": "a/b c"})
            assert r.status == 200 and r.doc["path"] == "/v1/echo" and r.doc["query"] == {"model": "a/b c"}
            assert r.doc["auth"] == "Bearer secret-key"
            assert r.doc["ua"] == f"inference-exporter/{__version__}"
            # Exactly the codings the client undoes (exporter.upstream.encoding).
            assert r.doc["accept_encoding"] == "gzip, deflate"
            assert r.date == 1_800_000_000.0  # the vendor's Date header
            r2 = await c.request_json(
                "POST", "/echo", source="s", endpoint="/echo", timeout=2, json_body={"x": [1, 2]}
            )
            assert r2.doc["method"] == "POST" and json.loads(r2.doc["body"]) == {"x": [1, 2]}
            # The connection was kept alive and reused.
            assert r2.doc["peer"] == r.doc["peer"]
            # A cookie set by one answer never goes out with a later request.
            assert r.doc["cookie"] is None and r2.doc["cookie"] is None
            # Content-Encoding is undone.
            assert (await get(c, "/gz")).doc == {"ok": True}
            assert counted(c.stats.requests, source="s", endpoint="/echo", code="200") == 2

    asyncio.run(go())


def test_connections_are_bounded() -> None:
    active = peak = 0

    async def counted(request: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return web.json_response({})

    async def go() -> None:
        async for c in vendor({"/c": counted}, 3):
            replies = await asyncio.gather(*(get(c, "/c", timeout=10) for _ in range(30)))
            assert all(r.status == 200 for r in replies)

    asyncio.run(go())
    assert 1 <= peak <= 3


def test_oversized_and_malformed_bodies() -> None:
    async def go() -> None:
        async for c in vendor({"/big": big, "/bad": not_json}):
            c.max_body_bytes = 10_000
            with pytest.raises(UpstreamError) as err:
                await get(c, "/big")
            assert err.value.reason == "body_too_large" and "10000 bytes" in err.value.detail
            with pytest.raises(InvalidResponse):
                await get(c, "/bad")
            # Counted by the status the vendor answered; neither is retried.
            assert counted(c.stats.requests, source="s", endpoint="/big", code="200") == 1
            assert counted(c.stats.requests, source="s", endpoint="/bad", code="200") == 1
            assert counts(c.stats.retries) == {}

    asyncio.run(go())


async def raw_server(behaviour: str) -> tuple[asyncio.Server, int]:
    """A vendor misbehaving below HTTP, after reading the request's head."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if behaviour == "hang-up":
            pass
        elif behaviour == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif behaviour == "truncated":
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a": ')
        elif behaviour == "not-http":
            writer.write(b"HELLO THERE\r\n\r\n")
        elif behaviour == "slow-body":
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a": ')
            await writer.drain()
        if behaviour.startswith("slow"):
            # Until the test ends and the loop cancels this handler: end quietly then.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


# What the detail says, so that a person knows where to look (host:port) and what happened.
DETAILS = {
    "hang-up": r"127\.0\.0\.1:\d+ closed the connection without answering",
    "reset": r"connection to 127\.0\.0\.1:\d+ reset",
    "truncated": r"the answer from 127\.0\.0\.1:\d+ was cut short",
    "not-http": r"127\.0\.0\.1:\d+ answered with something that is not HTTP \(check base_url\)",
    "refused": r"connection to 127\.0\.0\.1:\d+ refused \(nothing listens there\? check base_url\)",
    "slow-head": r"127\.0\.0\.1:\d+ sent no answer within 0\.3s",
    "slow-body": r"127\.0\.0\.1:\d+ did not send its whole answer within 0\.3s",
}


@pytest.mark.parametrize(
    ("behaviour", "reason", "code"),
    [
        ("hang-up", "connection_error", "error"),
        ("reset", "connection_error", "error"),
        ("truncated", "connection_error", "error"),
        ("not-http", "connection_error", "error"),
        ("refused", "connection_error", "error"),
        ("slow-head", "timeout", "timeout"),
        ("slow-body", "timeout", "timeout"),
    ],
)
def test_transport_failures_become_reasons(behaviour: str, reason: str, code: str) -> None:
    async def go() -> UpstreamError:
        server = None
        if behaviour == "refused":
            port = free_port()
        else:
            server, port = await raw_server(behaviour)
        stats = UpstreamStats()
        client = VendorClient("together", f"http://127.0.0.1:{port}", "k", max_connections=2, stats=stats)
        # Room for one attempt: the failure is reported as it happened, not retried away.
        token = POLL_DEADLINE.set(time.monotonic() + 0.35)
        try:
            with pytest.raises(UpstreamError) as err:
                await get(client, "/q", timeout=0.3)
        finally:
            POLL_DEADLINE.reset(token)
            await client.aclose()
            if server is not None:
                server.close()
        assert counted(stats.requests, source="s", endpoint="/q", code=code) >= 1
        assert set(counts(stats.requests)) == {("s", "/q", code, "default")}
        return err.value

    error = asyncio.run(go())
    assert error.reason == reason, error
    assert re.fullmatch(rf"GET /q: {DETAILS[behaviour]}", error.detail), error.detail


def answer(status: int, headers: dict[str, str] | None = None, body: bytes = b"{}") -> Answer:
    return Answer(status, httpx.Headers(headers or {}), body)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "client_error"),
        (401, "unauthorized"),
        (403, "unauthorized"),
        (404, "not_found"),
        (409, "client_error"),
        (429, "rate_limited"),
        (500, "server_error"),
        (503, "server_error"),
    ],
)
def test_statuses_become_reasons(status: int, reason: str) -> None:
    body = b'{"error": {"message": "nope"}}'
    error = upstream_error(
        "GET /q", answer(status, {"Retry-After": "7"}, body), timeout=1, max_body_bytes=1000
    )
    assert error.reason == reason
    assert error.detail == f"GET /q answered {status}: nope"
    # Only answers that can heal carry the vendor's hint on when to ask again.
    assert error.retry_after == (7.0 if status == 429 or status >= 500 else None)


def caused(exc: Exception, cause: BaseException) -> Exception:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (httpx.ReadTimeout("t"), "timeout"),
        (httpx.ConnectTimeout("t"), "timeout"),
        (httpx.ConnectError("refused"), "connection_error"),
        (httpx.ReadError("reset"), "connection_error"),
        (httpx.RemoteProtocolError("bad"), "connection_error"),
        # httpx-aiohttp's classes, with aiohttp's error as the cause.
        (caused(httpx.ConnectTimeout("x"), aiohttp.ServerDisconnectedError()), "connection_error"),
        (caused(httpx.ConnectTimeout("x"), aiohttp.ClientOSError(104, "reset")), "connection_error"),
        (caused(httpx.ConnectTimeout("x"), aiohttp.ConnectionTimeoutError()), "timeout"),
        (caused(httpx.ReadTimeout("x"), aiohttp.SocketTimeoutError()), "timeout"),
        (caused(httpx.ReadError("x"), aiohttp.ClientPayloadError()), "connection_error"),
        (ConnectionResetError(), "connection_error"),
        (TimeoutError(), "timeout"),
    ],
)
def test_transport_errors_become_reasons(failure: BaseException, reason: str) -> None:
    error = upstream_error("GET /q", failure, timeout=0.5, max_body_bytes=1000)
    assert error.reason == reason
    assert isinstance(error, InvalidResponse) == (reason == "invalid_response")


def test_a_body_past_the_cap_is_too_large_whatever_the_status() -> None:
    for status in (200, 500):
        error = upstream_error("GET /q", answer(status, body=b"x" * 1001), timeout=1, max_body_bytes=1000)
        assert error.reason == "body_too_large"
        assert error.retry_after is None


def test_an_untrusted_tls_certificate_is_named_as_such(tmp_path: Path) -> None:
    ca = pki.make_ca("untrusted test CA")
    cert, key = pki.issue(ca, "127.0.0.1", ips=["127.0.0.1"]).write(tmp_path, "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def go() -> UpstreamError:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        client = VendorClient(
            "together", f"https://127.0.0.1:{port}", "k", max_connections=2, stats=UpstreamStats()
        )
        try:
            with pytest.raises(UpstreamError) as err:
                await get(client, "/q", timeout=2)
        finally:
            await client.aclose()
            server.close()
        return err.value

    error = asyncio.run(go())
    assert error.reason == "connection_error"
    assert re.fullmatch(
        r"GET /q: the TLS certificate of 127\.0\.0\.1:\d+ is not trusted \(verification failed\)",
        error.detail,
    )


def test_a_name_that_does_not_resolve_is_named_as_such() -> None:
    dns = aiohttp.ClientConnectorDNSError(
        aiohttp.client_reqrep.ConnectionKey("api.example", 443, True, True, None, None, None),
        OSError(-2, "Name or service not known"),
    )
    error = upstream_error(
        "GET /q", caused(httpx.ConnectError("x"), dns), timeout=1, max_body_bytes=10, where="api.example:443"
    )
    assert (error.reason, error.detail) == (
        "connection_error",
        "GET /q: cannot resolve the host name of api.example:443",
    )


def test_a_failure_of_an_endpoint_on_another_host_names_that_host() -> None:
    """A relayed endpoint may live elsewhere than the API: its failure says where it was."""
    closed = free_port()

    async def go() -> UpstreamError:
        async for client in vendor({"/q": echo}):
            with pytest.raises(UpstreamError) as err:
                await client.request_raw(
                    f"http://127.0.0.1:{closed}/metrics",
                    source="s",
                    endpoint="/metrics",
                    timeout=0.3,
                    max_attempts=1,
                )
        return err.value

    error = asyncio.run(go())
    assert error.reason == "connection_error"
    assert error.detail.endswith(
        f"connection to 127.0.0.1:{closed} refused (nothing listens there? check url)"
    ), error


def test_an_endpoint_whose_url_the_base_url_only_begins_is_named_by_its_url() -> None:
    """``http://h:4321`` begins ``http://h:43217/metrics`` without being its base."""
    closed = free_port()

    async def go() -> UpstreamError:
        base = f"http://127.0.0.1:{closed // 10}"
        client = VendorClient("together", base, "secret-key", max_connections=1, stats=UpstreamStats())
        try:
            with pytest.raises(UpstreamError) as err:
                url = f"http://127.0.0.1:{closed}/metrics"
                await client.request_raw(url, source="s", endpoint="/metrics", timeout=0.3, max_attempts=1)
        finally:
            await client.aclose()
        return err.value

    assert asyncio.run(go()).detail.endswith("(nothing listens there? check url)")
