"""What any answer for ``base_url`` (the vendor, a proxy, anyone on an ``http://`` path) can
do to one request: every one ends in a reason, within the timeout and the body cap."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import time
import tracemalloc
import zlib
from dataclasses import dataclass

import pytest
from aiohttp import web

from exporter.core.errors import UpstreamError
from exporter.upstream.client import UpstreamStats, VendorClient
from exporter.upstream.retry import POLL_DEADLINE
from tests.helpers import counts
from tests.unit.test_upstream import get, vendor

DOC = b'{"ok": true}'
# 1 GiB of zeros, gzipped twice: a couple of kilobytes on the wire.
STACKED_BOMB = gzip.compress(gzip.compress(bytes(1 << 30), 9), 9)


@dataclass(frozen=True)
class Spec:
    """An answer the fake vendor gives, as it is on the wire."""

    body: bytes
    encoding: str | None = None
    status: int = 200

    async def handle(self, request: web.Request) -> web.Response:
        headers = {"Content-Encoding": self.encoding} if self.encoding else {}
        return web.Response(
            body=self.body, status=self.status, headers=headers, content_type="application/json"
        )


async def reasons(routes: dict[str, Spec], cap: int) -> dict[str, str]:
    """Each route's failure as ``reason: detail`` ("ok …" for a reply) from a client whose cap is ``cap``."""
    out: dict[str, str] = {}
    async for c in vendor({path: spec.handle for path, spec in routes.items()}):
        c.max_body_bytes = cap
        for path in routes:
            try:
                reply = await get(c, path)
                out[path] = f"ok {reply.doc}"
            except UpstreamError as exc:
                out[path] = str(exc)
        # Only what can heal (a 5xx) is retried.
        healing = {path for path, spec in routes.items() if spec.status >= 500}
        assert {endpoint for _, endpoint, _ in counts(c.stats.retries)} == healing
    return out


def test_content_codings_are_undone_or_refused_with_a_reason() -> None:
    routes = {
        "/plain": Spec(DOC),
        "/gzip": Spec(gzip.compress(DOC), "gzip"),
        "/deflate": Spec(zlib.compress(DOC), "deflate"),
        "/stacked": Spec(gzip.compress(gzip.compress(DOC)), "gzip, gzip"),
        "/stacked-bomb": Spec(STACKED_BOMB, "gzip, gzip"),
        "/unknown": Spec(DOC, "br"),
        "/corrupt": Spec(b"\x1f\x8b" + bytes(30), "gzip"),
        "/bomb": Spec(gzip.compress(bytes(64 << 20), 9), "gzip"),
        # 200 kB of empty gzip members: nothing decoded, the wire still meets the cap.
        "/empty-members": Spec(gzip.compress(b"") * 10_000, "gzip"),
        # An error answer is its status's reason, whatever its coding.
        "/error": Spec(DOC, "gzip, gzip", 503),
    }
    t0 = time.perf_counter()
    got = asyncio.run(reasons(routes, cap=100_000))
    assert got == {
        "/plain": "ok {'ok': True}",
        "/gzip": "ok {'ok': True}",
        "/deflate": "ok {'ok': True}",
        "/stacked": "unsupported_encoding: GET /stacked: Content-Encoding 'gzip, gzip': stacked codings are refused",
        "/stacked-bomb": "unsupported_encoding: GET /stacked-bomb: Content-Encoding 'gzip, gzip': "
        "stacked codings are refused",
        "/unknown": "unsupported_encoding: GET /unknown: Content-Encoding 'br' is not one of identity, gzip, deflate",
        "/corrupt": "invalid_response: GET /corrupt: the gzip body is corrupt",
        "/bomb": "body_too_large: GET /bomb: body over 100000 bytes",
        "/empty-members": "body_too_large: GET /empty-members: body over 100000 bytes",
        "/error": "server_error: GET /error answered 503",
    }
    # Nothing was expanded past the cap: no gigabyte was ever decoded.
    assert time.perf_counter() - t0 < 10


def test_json_nested_deeper_than_the_parser_goes_is_an_invalid_response() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    routes = {
        "/deep": Spec(deep),
        "/deep-object": Spec(b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
        # An error answer's body is read for the vendor's message: the same rules hold.
        "/deep-error": Spec(deep, "identity", 500),
    }
    assert asyncio.run(reasons(routes, cap=1 << 20)) == {
        "/deep": "invalid_response: GET /deep: JSON nested too deep",
        "/deep-object": "invalid_response: GET /deep-object: JSON nested too deep",
        "/deep-error": "server_error: GET /deep-error answered 500",
    }


def test_a_string_that_is_not_text_is_refused_naming_where_it_is() -> None:
    deployments = rb'{"deployments": [{"id": "dgood", "name": "a"}, {"id": "d\udfff", "name": "b"}]}'
    routes = {
        "/lone": Spec(deployments),
        "/lone-key": Spec(rb'{"rows": [{"eval/\ud800x": 1}]}'),
        "/utf16": Spec('{"a": "b"}'.encode("utf-16")),
        "/not-utf8": Spec(b'{"a": "\xff"}'),
        "/error": Spec(rb'{"error": {"message": "bad \udfff"}}', "identity", 401),
    }
    assert asyncio.run(reasons(routes, cap=1 << 20)) == {
        "/lone": "invalid_response: GET /lone: the string at deployments[1].id is not valid Unicode "
        "(a lone surrogate escape)",
        "/lone-key": 'invalid_response: GET /lone-key: the string at rows[0]["eval/\\ud800x"] (a key) is not '
        "valid Unicode (a lone surrogate escape)",
        "/utf16": "invalid_response: GET /utf16: body is not UTF-8",
        "/not-utf8": "invalid_response: GET /not-utf8: body is not UTF-8",
        # The vendor's message is left out rather than carried.
        "/error": "unauthorized: GET /error answered 401",
    }


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A vendor that answers at once, then sends its body one byte at a time: every
    wait for the next byte is short, the whole answer takes 25 s."""
    await reader.readuntil(b"\r\n\r\n")
    body = b'{"pad": "' + b"x" * 88 + b'"}'
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        for i in range(len(body)):
            writer.write(body[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.25)
    writer.close()


def test_a_body_trickling_in_is_bounded_by_the_timeout_as_a_whole() -> None:
    async def go() -> tuple[UpstreamError, float]:
        server = await asyncio.start_server(trickle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = VendorClient(
            "together", f"http://127.0.0.1:{port}", "k", max_connections=2, stats=UpstreamStats()
        )
        # Room for one attempt of 1 s; without a bound on the whole request, the body
        # would hold it for 25 s (the test gives up after 6).
        token = POLL_DEADLINE.set(time.monotonic() + 1.05)
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(6):
                with pytest.raises(UpstreamError) as err:
                    await get(client, "/q", timeout=1.0)
            return err.value, time.monotonic() - t0
        finally:
            POLL_DEADLINE.reset(token)
            await client.aclose()
            server.close()

    error, elapsed = asyncio.run(go())
    assert error.reason == "timeout"
    assert error.detail.startswith("GET /q: 127.0.0.1:") and error.detail.endswith(
        " did not send its whole answer within 1s"
    )
    assert elapsed < 2.5, elapsed


def test_a_refused_answer_is_freed_at_once_not_by_a_full_collection() -> None:
    """An error's traceback holds the frames it went through; none may also hold the error
    (a cycle), or the answer in them (up to the cap) lives on until a full collection."""
    big = b"x" * (4 << 20)
    routes = {
        "/too-large": Spec(b'"' + big + big + b'"'),
        "/not-json": Spec(b'{"a": "' + big),
        "/not-text": Spec(b'["' + big + b'", "\\udfff"]'),
        "/error": Spec(b'{"error": {"message": "' + big + b'"}}', status=503),
    }

    async def go() -> dict[str, int]:
        left: dict[str, int] = {}
        async for c in vendor({path: spec.handle for path, spec in routes.items()}):
            c.max_body_bytes = 6 << 20
            for path in routes:
                base = tracemalloc.get_traced_memory()[0]
                with contextlib.suppress(UpstreamError):
                    await get(c, path)
                left[path] = tracemalloc.get_traced_memory()[0] - base
        return left

    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        left = asyncio.run(go())
    finally:
        tracemalloc.stop()
        gc.enable()
    assert all(n < 1 << 20 for n in left.values()), left


def test_waiting_for_a_free_connection_is_not_counted_against_the_vendor() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.json_response({"ok": True})

    async def go() -> list[bool]:
        async for c in vendor({"/slow": slow}, max_connections=1):
            token = POLL_DEADLINE.set(time.monotonic() + 5)
            try:
                # The second waits 0.6 s for the one connection, then gets its answer
                # in 0.6 s: each request took less than its 1 s.
                replies = await asyncio.gather(*(get(c, "/slow", timeout=1.0) for _ in range(2)))
            finally:
                POLL_DEADLINE.reset(token)
            assert counts(c.stats.retries) == {}
            return [r.doc["ok"] for r in replies]
        raise AssertionError("no vendor")

    assert asyncio.run(go()) == [True, True]
