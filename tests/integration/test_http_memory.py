"""What hostile HTTP clients cost the daemon in memory (its RSS, from /proc).

Clients come from two loopback source addresses, so that each stays within its share
of the connection cap and all of them are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exporter.web.limits import DEFAULT_LIMITS
from tests.conftest import SIM_KEY
from tests.helpers import Proc, start_daemon
from tests.integration.hostile import background_loop, idle_daemon, open_from, outcomes, rss_mb, until_closed
from tests.integration.queue_config import KEY_ENV

SOURCES = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Proc]:
    with idle_daemon(tmp_path) as proc:
        yield proc


async def refused_burst(url: str, connections: int, head: bytes) -> list[str]:
    """``connections`` clients each send ``head`` and read what comes back until closed."""

    async def one(i: int) -> str:
        try:
            reader, writer = await open_from(url, SOURCES[i % len(SOURCES)])
        except OSError as exc:
            return type(exc).__name__
        try:
            writer.write(head)
            # Refused before it was all sent: what is read below says how.
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.drain(), 10)
            status = await asyncio.wait_for(reader.read(12), 10)
            closed = await until_closed(reader, asyncio.get_running_loop().time() + 5)
            return status.decode(errors="replace") if closed else "still open"
        except (OSError, TimeoutError) as exc:
            return type(exc).__name__
        finally:
            writer.transport.abort()

    return list(await asyncio.gather(*(one(i) for i in range(connections))))


@pytest.mark.integration
def test_refused_heads_leave_no_memory_behind(daemon: Proc) -> None:
    """Each client sends ``GET /metrics`` and a header line of 1 MiB that never ends:
    each is refused and closed, and what it sent does not stay in memory."""
    idle = rss_mb(daemon)
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (1 << 20)
    with background_loop() as loop:
        for _ in range(3):
            results = loop.run(refused_burst(daemon.url, 400, head), timeout=60)
            refused = [r for r in results if r.startswith("HTTP/1.") and r[9:10] == "4"]
            assert len(refused) >= 0.9 * len(results), outcomes(results)
    time.sleep(10)
    grown = rss_mb(daemon) - idle
    assert grown < 100, f"{grown:.0f} MB left behind by three bursts of refused heads"
    assert httpx.get(daemon.url + "/-/healthy", timeout=5).status_code == 200
    assert "Traceback" not in daemon.log()


async def hold_unfinished(url: str, connections: int, head: bytes) -> list[asyncio.StreamWriter]:
    writers = []
    for i in range(connections):
        _, writer = await open_from(url, SOURCES[i % len(SOURCES)])
        writer.write(head)
        writers.append(writer)
    await asyncio.gather(*(w.drain() for w in writers), return_exceptions=True)
    return writers


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.transport.abort()


def _head(headers: int, value_bytes: int) -> bytes:
    return b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: %s\r\n" % (i, b"a" * value_bytes) for i in range(headers)
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    "head",
    [_head(31, 8000), _head(7, 8000)[: DEFAULT_LIMITS.max_head_bytes - 10]],
    ids=["every-header-the-parser-allows", "just-under-the-head-bound"],
)
def test_an_unfinished_head_costs_little(daemon: Proc, head: bytes) -> None:
    """Heads within every limit (or refused at once for their size), never finished:
    what each connection costs while it is open."""
    connections = 400
    idle = rss_mb(daemon)
    with background_loop() as loop:
        writers = loop.run(hold_unfinished(daemon.url, connections, head), timeout=30)
        try:
            time.sleep(1.5)  # well within the read timeout: all of them are still open or refused
            per_connection_kib = (rss_mb(daemon) - idle) * 1024 / connections
        finally:
            loop.run(close_all(writers))
    assert per_connection_kib <= 128, f"{per_connection_kib:.0f} KiB per unfinished head"


# --- clients that never read what they asked for --------------------------------------


@pytest.fixture
def large_exposition(tmp_path: Path, simulator: Proc) -> Iterator[Proc]:
    """A daemon whose exposition is several MB in parts of about 1 MB (and whose gzip is
    a few MB): 300 queue targets, each with a long label value of random hex."""
    rnd = random.Random(22)
    lines = [
        "global: {poll_interval: 60s, timeout: 5s, start_spread: 1s}",
        "together:",
        f"  base_url: {simulator.url}/v1",
        f"  api_key_env: {KEY_ENV}",
        "  queues:",
        *(
            f"    - {{model: big/model-{i}, labels: {{pad: {rnd.randbytes(1500).hex()}}}}}"
            for i in range(300)
        ),
    ]
    config = tmp_path / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    proc = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    yield proc
    assert proc.stop() == 0


async def never_read(url: str, clients: int, request: bytes) -> list[asyncio.StreamWriter]:
    """``clients`` connections that each ask for ``request`` and read nothing."""
    writers = []
    for i in range(clients):
        _, writer = await open_from(url, SOURCES[i % len(SOURCES)], rcvbuf=4096)
        writer.write(request)
        writers.append(writer)
    return writers


@pytest.mark.integration
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_clients_that_never_read_hold_little(large_exposition: Proc, encoding: str) -> None:
    """Each client asks for /metrics and reads nothing: what is not sent waits in the
    exposition's shared parts, not in a copy per client."""
    first = httpx.get(large_exposition.url + "/metrics", headers={"Accept-Encoding": encoding}, timeout=30)
    size = first.num_bytes_downloaded
    assert size > 3_000_000
    clients = 300
    idle = rss_mb(large_exposition)
    request = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {encoding}\r\n\r\n".encode()
    with background_loop() as loop:
        writers = loop.run(never_read(large_exposition.url, clients, request), timeout=30)
        try:
            time.sleep(3)  # every answer is under way, as far as the clients let it
            grown = rss_mb(large_exposition) - idle
        finally:
            loop.run(close_all(writers))
    assert grown < 100, f"{grown:.0f} MB held for {clients} clients that read nothing of {size} bytes"
