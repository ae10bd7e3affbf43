"""The aiohttp-backed httpx transport behaves like httpx's own for everything we rely on."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import httpx
import pytest
from aiohttp import web

from exporter.errors import UpstreamError
from exporter.pool import AiohttpTransport
from exporter.upstream import UpstreamStats, VendorClient
from tests.helpers import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(routes: dict[str, Handler]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "query": dict(request.query),
            "auth": request.headers.get("Authorization"),
            "ua": request.headers.get("User-Agent"),
            "body": body.decode(),
            "peer": request.transport.get_extra_info("peername")[1] if request.transport else None,
        },
        headers={"X-Extra": "yes"},
    )


async def gzipped(request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(b'{"ok": true}'), headers={"Content-Encoding": "gzip"})


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.json_response({})


async def slow_body(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    await resp.prepare(request)
    await resp.write(b'{"a": ')
    await asyncio.sleep(2)
    await resp.write(b"1}")
    return resp


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


async def client_for(
    routes: dict[str, Handler], max_connections: int = 4
) -> AsyncIterator[httpx.AsyncClient]:
    runner, url = await serve(routes)
    client = httpx.AsyncClient(
        base_url=url, transport=AiohttpTransport(max_connections), headers={"User-Agent": "t/1"}
    )
    try:
        yield client
    finally:
        await client.aclose()
        await runner.cleanup()


def test_requests_and_responses_pass_through() -> None:
    async def go() -> None:
        async for c in client_for({"/echo": echo, "/gz": gzipped}):
            r = await c.get("/echo", params={"model": "a/b c"}, headers={"Authorization": "Bearer k"})
            doc = r.json()
            assert r.status_code == 200 and r.headers["x-extra"] == "yes"
            assert doc["query"] == {"model": "a/b c"} and doc["auth"] == "Bearer k" and doc["ua"] == "t/1"
            r2 = await c.post("/echo", json={"x": [1, 2]})
            assert r2.json()["method"] == "POST" and json.loads(r2.json()["body"]) == {"x": [1, 2]}
            assert r2.json()["peer"] == doc["peer"]  # the connection was kept alive and reused
            # httpx decodes Content-Encoding itself; the transport hands over raw bytes.
            assert (await c.get("/gz")).json() == {"ok": True}

    run(go)


def test_timeouts_and_refused_connections_raise_httpx_errors() -> None:
    async def go() -> None:
        async for c in client_for({"/slow": slow, "/slow-body": slow_body}):
            with pytest.raises(httpx.ReadTimeout):
                await c.get("/slow", timeout=0.3)
            req = c.build_request("GET", "/slow-body", timeout=0.3)
            resp = await c.send(req, stream=True)
            with pytest.raises(httpx.ReadTimeout):
                async for _ in resp.aiter_bytes():
                    pass
            await resp.aclose()
        refused = httpx.AsyncClient(transport=AiohttpTransport(2))
        with pytest.raises(httpx.ConnectError):
            await refused.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
        await refused.aclose()

    run(go)


def test_connections_are_bounded() -> None:
    active = 0
    peak = 0

    async def counted(request: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return web.json_response({})

    async def go() -> None:
        async for c in client_for({"/c": counted}, max_connections=3):
            results = await asyncio.gather(*(c.get("/c", timeout=10) for _ in range(30)))
            assert all(r.status_code == 200 for r in results)

    run(go)
    assert 1 <= peak <= 3


def test_vendor_client_maps_failures_to_reasons() -> None:
    async def go() -> None:
        runner, url = await serve({"/v1/slow": slow, "/v1/ok": echo})
        stats = UpstreamStats()
        vc = VendorClient("together", url + "/v1", "secret-key", max_connections=2, stats=stats)
        try:
            status, doc, _ = await vc.request_json("GET", "/ok", source="s", endpoint="/ok", timeout=2)
            assert status == 200 and doc["auth"] == "Bearer secret-key"
            with pytest.raises(UpstreamError) as exc:
                await vc.request_json("GET", "/slow", source="s", endpoint="/slow", timeout=0.3)
            assert exc.value.reason == "timeout"
        finally:
            await vc.aclose()
            await runner.cleanup()
        dead = VendorClient(
            "together", f"http://127.0.0.1:{free_port()}", "k", max_connections=1, stats=stats
        )
        with pytest.raises(UpstreamError) as exc2:
            await dead.request_json("GET", "/x", source="s", endpoint="/x", timeout=1)
        assert exc2.value.reason == "connection_error"
        await dead.aclose()
        assert stats.requests[("s", "/slow", "timeout")] == 1

    run(go)
