"""A vendor on loopback that misbehaves on purpose: canned answers as they are on the wire
(any header, any bytes), or a body that trickles in, per request path and ``model``.

It runs in a thread of the test process, so a test sets and changes answers while the
daemon (a subprocess) polls it, and reads back when each request arrived and ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Canned:
    """An answer sent at once: status, headers (Content-Length is added) and body bytes."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass(frozen=True)
class Trickle:
    """A 200 whose head comes at once and whose body then comes one byte every ``every`` seconds."""

    body: bytes
    every: float = 1.0


Answer = Canned | Trickle


@dataclass
class Seen:
    """One request: what it asked for, when it arrived and when the client let go of it."""

    key: str
    start: float
    end: float | None = None


class HostileVendor:
    """``answers`` maps ``path`` or ``path?model=…`` to an Answer; anything else is a 404."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.seen: list[Seen] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop
        ).result(10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def durations(self, key: str) -> list[float]:
        """How long each finished request for ``key`` was held, oldest first."""
        return [s.end - s.start for s in list(self.seen) if s.key == key and s.end is not None]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            while True:  # keep-alive: one request after another
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                url = urlsplit(target)
                model = parse_qs(url.query).get("model", [None])[0]
                key = f"{url.path}?model={model}" if model else url.path
                seen = Seen(key, time.monotonic())
                self.seen.append(seen)
                answer = self.answers.get(key) or self.answers.get(url.path)
                if isinstance(answer, Trickle):
                    await self._trickle(answer, reader, writer)
                    seen.end = time.monotonic()
                    break
                canned = answer or Canned(b'{"error": {"message": "no such thing"}}', status=404)
                headers = {**canned.headers, "Content-Length": str(len(canned.body))}
                writer.write(
                    f"HTTP/1.1 {canned.status} X\r\n".encode()
                    + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
                    + b"\r\n"
                    + canned.body
                )
                await writer.drain()
                seen.end = time.monotonic()
        writer.close()

    async def _trickle(
        self, answer: Trickle, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send the body byte by byte until it is all sent or the client hangs up."""
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % len(answer.body))
        for i in range(len(answer.body)):
            writer.write(answer.body[i : i + 1])
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1), answer.every) == b"":
                    return  # the client hung up
