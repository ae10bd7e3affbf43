"""Misbehaving HTTP clients for the daemon's server, and what they cost it.

Every client here connects to 127.0.0.1 only, optionally from another loopback source
address (all of 127.0.0.0/8 is loopback on Linux), so that one test can play several
peers: an attacker from 127.0.0.2 and a scraper from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tests.helpers import Proc, start_daemon

T = TypeVar("T")


@contextlib.contextmanager
def idle_daemon(tmp_path: Path, *args: str) -> Iterator[Proc]:
    """The daemon with no targets and these flags; it must exit cleanly at the end."""
    config = tmp_path / "config.yaml"
    config.write_text("global:\n  poll_interval: 10s\n")
    proc = start_daemon(tmp_path, config, extra_args=list(args))
    try:
        yield proc
    finally:
        assert proc.stop() == 0


def rss_mb(proc: Proc) -> float:
    return proc_status_mb(proc.popen.pid, "VmRSS")


def proc_status_mb(pid: int, key: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (the peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for {pid}")


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect_from(url: str, source: str = "127.0.0.1", timeout: float = 5) -> socket.socket:
    """A blocking connection to the daemon at ``url`` from the loopback address ``source``."""
    return socket.create_connection(address(url), timeout=timeout, source_address=(source, 0))


class Loop:
    """An asyncio loop on a thread of its own, for clients that run beside the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@contextlib.contextmanager
def background_loop() -> Iterator[Loop]:
    loop = Loop()
    try:
        yield loop
    finally:
        loop.close()


async def open_from(
    url: str, source: str, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from ``source``; ``rcvbuf`` shrinks its receive buffer, so that a
    client that reads nothing leaves what it does not take on the server's side."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, address(url))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=1 << 16)


async def until_closed(reader: asyncio.StreamReader, deadline: float) -> bool:
    """Read and drop until the server closes; False if it has not by ``deadline``."""
    loop = asyncio.get_running_loop()
    try:
        while (left := deadline - loop.time()) > 0:
            if not await asyncio.wait_for(reader.read(1 << 16), left):
                return True
    except (ConnectionError, OSError):
        return True
    except TimeoutError:
        return False
    return False


class SilentHolder:
    """One peer that holds as many silent connections as it can, and reopens each one
    the server closes, until stopped."""

    def __init__(self, url: str, source: str, sockets: int) -> None:
        self.url, self.source, self.sockets = url, source, sockets
        self.connects = 0
        self.held_now = 0
        self._stop = asyncio.Event()

    async def _one(self) -> None:
        while not self._stop.is_set():
            try:
                reader, writer = await open_from(self.url, self.source)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            self.connects += 1
            self.held_now += 1
            opened = time.monotonic()
            try:
                stop = asyncio.ensure_future(self._stop.wait())
                read = asyncio.ensure_future(reader.read(1))
                await asyncio.wait({stop, read}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                read.cancel()
            except (ConnectionError, OSError):
                pass
            finally:
                self.held_now -= 1
                writer.transport.abort()
            # Again at once as the server frees a slot; a little later if it refused this one.
            await asyncio.sleep(0.25 if time.monotonic() - opened < 0.1 else 0.02)

    async def run(self, seconds: float) -> None:
        tasks = [asyncio.ensure_future(self._one()) for _ in range(self.sockets)]
        await asyncio.sleep(seconds)
        self._stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def outcomes(results: list[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in Counter(results).most_common())


def wait_for(cond: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())


async def fetch_repeatedly(
    url: str, path: str, clients: int, seconds: float, pause: float = 0.0
) -> Counter[str]:
    """``clients`` clients, each asking for ``path`` and reading the whole answer, again
    and again on one kept-alive connection (``pause`` seconds apart) for ``seconds``;
    the answers' status codes."""
    host, port = address(url)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    results: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while loop.time() < end:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                results[head[9:12].decode()] += 1
                await asyncio.sleep(pause)
        except (ConnectionError, asyncio.IncompleteReadError, StopIteration) as exc:
            results[type(exc).__name__] += 1
        finally:
            writer.transport.abort()

    await asyncio.gather(*(one() for _ in range(clients)))
    return results


def main(argv: list[str]) -> int:
    """``python -m tests.integration.hostile URL PATH CLIENTS SECONDS [PAUSE]``:
    fetch_repeatedly in a process of its own (its CPU is not the test's), printing the
    status counts as JSON."""
    url, path, clients, seconds, *pause = argv
    counts = asyncio.run(
        fetch_repeatedly(url, path, int(clients), float(seconds), float(pause[0] if pause else 0))
    )
    print(json.dumps(dict(counts)), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
