"""A vendor's connection pool with its waiting line outside httpx.

httpx (httpcore) keeps requests that wait for a free connection in a list that it
scans against every connection on every pool event: O(waiting * connections) work
per request. With thousands of targets due within a few seconds and a pool of ten,
that scan became most of the exporter's CPU and pushed polls past their timeouts.
Here requests beyond the pool size wait on a semaphore instead (O(1) per wake-up),
so httpx only ever sees as many requests as it has connections. The wait is not
part of a request's timeout; each poll as a whole stays bounded by its interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives the pool slot back when it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, release: asyncio.Semaphore) -> None:
        self._inner = inner
        self._slot: asyncio.Semaphore | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._slot is not None:
                self._slot.release()
                self._slot = None


class BoundedTransport(httpx.AsyncBaseTransport):
    """At most ``max_connections`` requests inside httpx at once; the rest queue here."""

    def __init__(self, max_connections: int) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._slots.acquire()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self._slots)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
