"""Whole request heads only reach aiohttp's parser: the server on a loopback port, in-process."""

from __future__ import annotations

import asyncio
import gc
import re
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from exporter.config import load_config
from exporter.engine.daemon import Exporter
from exporter.web.httpguard import ConnectionGuard, GuardedSite, handler_args
from exporter.web.limits import DEFAULT_LIMITS, ConnectionLimits
from exporter.web.server import make_app
from tests.helpers import counted

Talk = Callable[[bytes], Awaitable[bytes]]


@asynccontextmanager
async def server(
    tmp_path: Path, limits: ConnectionLimits = DEFAULT_LIMITS
) -> AsyncIterator[tuple[int, ConnectionGuard]]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("global: {}\n")
    exporter = Exporter(cfg)
    await exporter.start(load_config(cfg))
    guard = ConnectionGuard(limits)
    runner = web.AppRunner(make_app(exporter, guard=guard), access_log=None, **handler_args(limits))
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard)
    await site.start()
    try:
        yield runner.addresses[0][1], guard
    finally:
        await runner.cleanup()
        await exporter.stop()


async def exchange(port: int, *writes: bytes, pause: float = 0.0) -> bytes:
    """Send ``writes`` (``pause`` apart), then read until the server closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for w in writes:
            writer.write(w)
            await writer.drain()
            await asyncio.sleep(pause)
        out = b""
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 1.0)
            except TimeoutError:
                return out
            if not chunk:
                return out
            out += chunk
    finally:
        writer.transport.abort()


def statuses(answer: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)]


GET = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
READY = b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n"


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async def go() -> None:
        async with server(tmp_path) as (port, _):
            answer = await exchange(port, GET + b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n" + READY)
            assert statuses(answer) == ["200", "404", "200"]
            assert answer.count(b"Healthy.") == 1 and answer.count(b"Ready.") == 1

    asyncio.run(go())


def test_a_head_sent_a_byte_at_a_time_blank_lines_and_bare_newlines(tmp_path: Path) -> None:
    async def go() -> None:
        async with server(tmp_path) as (port, _):
            trickled = await exchange(port, *(GET[i : i + 1] for i in range(len(GET))), pause=0.001)
            assert statuses(trickled) == ["200"]
            blank_lines = await exchange(port, b"\r\n\r\n" + GET + b"\r\n" + READY)
            assert statuses(blank_lines) == ["200", "200"]
            # A head ended by bare newlines is whole too: the parser answers it (it refuses them).
            assert statuses(await exchange(port, b"GET /-/ready HTTP/1.1\nHost: x\n\n")) == ["400"]

    asyncio.run(go())


def test_request_bodies_are_read_past_before_the_next_request(tmp_path: Path) -> None:
    async def go() -> None:
        async with server(tmp_path) as (port, _):
            sized = b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n\r\n\r\nGET / HTTP"
            answer = await exchange(port, sized + GET)
            assert statuses(answer) == ["403", "200"]  # the body looked like a head; it was not one
            chunked = b"POST /-/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n"
            answer = await exchange(port, chunked, GET, pause=0.05)
            assert statuses(answer) == ["403", "200"]

    asyncio.run(go())


def test_a_head_past_its_bound_gets_431_and_is_closed(tmp_path: Path) -> None:
    limits = replace(DEFAULT_LIMITS, max_head_bytes=1024)

    async def go() -> None:
        async with server(tmp_path, limits) as (port, guard):
            answer = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000)
            assert statuses(answer) == ["431"]
            fits = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 900 + b"\r\n\r\n"
            assert statuses(await exchange(port, fits)) == ["200"]
            assert counted(guard.stats.closes, reason="header_too_large") == 1

    asyncio.run(go())


def test_a_malformed_request_gets_400_and_leaves_no_cycle_behind(tmp_path: Path) -> None:
    """The parser's error would keep, through its traceback, the frame that fed it and
    the bytes fed, in a cycle only a full collection frees."""

    async def go() -> list[object]:
        async with server(tmp_path) as (port, guard):
            gc.collect()
            gc.disable()
            try:
                answers = [
                    await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n") for _ in range(5)
                ]
                assert all(statuses(a) == ["400"] for a in answers)
                assert counted(guard.stats.closes, reason="malformed") == 5
                gc.set_debug(gc.DEBUG_SAVEALL)
                gc.collect()
                kept: list[object] = [
                    o
                    for o in gc.garbage
                    if isinstance(o, HttpProcessingError)
                    or (isinstance(o, types.FrameType) and o.f_code.co_name == "data_received")
                ]
                return kept
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()

    assert asyncio.run(go()) == []


def test_binary_on_the_http_port_gets_400_at_once(tmp_path: Path) -> None:
    """A TLS handshake, say: it never sends a blank line, and need not wait for one."""

    async def go() -> None:
        async with server(tmp_path) as (port, guard):
            hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32))
            assert statuses(await exchange(port, hello)) == ["400"]
            assert statuses(await exchange(port, b"GET / HTTP/1.1\r\nHost: x\x01y\r\n")) == ["400"]
            assert counted(guard.stats.closes, reason="malformed") == 2

    asyncio.run(go())
