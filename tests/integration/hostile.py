"""Misbehaving HTTP clients for the daemon's server, and what they cost it.

Every client here connects to 127.0.0.1 only, optionally from another loopback source
address (all of 127.0.0.0/8 is loopback on Linux), so that one test can play several
peers: an attacker from 127.0.0.2 and a scraper from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


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


async def open_from(url: str, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address(url)
    return await asyncio.open_connection(host, port, local_addr=(source, 0), limit=1 << 16)


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
