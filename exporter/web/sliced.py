"""A response body sent in bounded slices, each written once the client has taken the last.

aiohttp writes a body part whole: whatever the socket does not take at once is copied
into the transport's buffer, so a client that reads nothing holds a copy of the whole
exposition until its connection is closed. Here each part (a cached family blob, a
rendered page) is sent as views of at most ``SLICE`` bytes, and the next one waits
until the transport's buffer has drained: a slow client holds at most a slice and the
buffer's high-water mark, while the parts themselves stay shared with every other
scrape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

SLICE = 256 * 1024


class SlicedPayload(Payload):
    """``parts`` sent one after the other, in slices of at most ``SLICE`` bytes."""

    def __init__(self, parts: Sequence[bytes], content_type: str = "application/octet-stream", **kw: Any):
        super().__init__(parts, content_type=content_type, **kw)
        self._parts = parts
        self._size = sum(len(p) for p in parts)

    async def write(self, writer: AbstractStreamWriter) -> None:
        for part in self._parts:
            view = memoryview(part)
            for start in range(0, len(view), SLICE):
                await writer.write(view[start : start + SLICE])
                await writer.drain()

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        await self.write(writer)  # the parts are exactly the declared length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._parts).decode(encoding, errors)
