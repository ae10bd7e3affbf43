"""The HTTP connections under each vendor's ``httpx.AsyncClient``: aiohttp's.

``VendorClient`` speaks httpx (its errors, timeouts and streaming are what the rest
of the exporter is written against), but the default httpx transport (httpcore on
anyio, h11 in pure Python) cost about 1 ms of CPU per request, most of a poll, and
its pool re-scans every waiting request against every connection on every event.
This transport keeps the httpx interface and moves the wire work to aiohttp, whose
HTTP parser is in C and whose pool hands out connections from a plain queue: about
a third of the CPU per request (see ``bench/poll.py``).

The httpx-aiohttp package offers such a transport too, but its exception map turns
every aiohttp connection error (a reset or a server that hangs up mid-answer among
them) into ``httpx.ConnectTimeout``: our failure reasons would call a reset a
timeout. Telling those apart is the point of the reasons, so the mapping lives here.

What it keeps from httpx's own transport:

- timeouts from the request's ``timeout`` extension: ``connect`` for opening a
  socket, ``read`` between bytes; waiting for a free connection is not timed here
  (each poll as a whole is bounded by its interval);
- failures raised as httpx exceptions (``ConnectTimeout``, ``ReadTimeout``,
  ``ConnectError``, ``ReadError``, ``RemoteProtocolError``), so callers map them to
  reasons exactly as before;
- the body is streamed and not decoded: httpx decodes ``Content-Encoding`` itself;
- at most ``max_connections`` connections, kept alive between requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
from multidict import CIMultiDict

# Headers aiohttp sets itself from the URL and the body.
_SKIP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_CHUNK = 64 * 1024


class _ResponseStream(httpx.AsyncByteStream):
    """An aiohttp response body as an httpx stream; closing it frees the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except TimeoutError as exc:
            raise httpx.ReadTimeout(
                f"body read timed out: {type(exc).__name__}", request=self._request
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise httpx.RemoteProtocolError(
                f"malformed body: {type(exc).__name__}", request=self._request
            ) from None
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"body read failed: {type(exc).__name__}", request=self._request) from None

    async def aclose(self) -> None:
        # A fully read body returns the connection to the pool; otherwise it is closed.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session with at most ``max_connections``."""

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop the session belongs to.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=0, ttl_dns_cache=60
                ),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read")
        )
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.decode("latin-1").lower() not in _SKIP_HEADERS
        )
        body = await request.aread()
        try:
            response = await self._get_session().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except aiohttp.ServerTimeoutError as exc:
            raise httpx.ReadTimeout(f"timed out: {type(exc).__name__}", request=request) from None
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect timed out: {type(exc).__name__}", request=request) from None
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(f"cannot connect: {type(exc).__name__}", request=request) from None
        except aiohttp.ClientResponseError as exc:
            raise httpx.RemoteProtocolError(f"bad response: {type(exc).__name__}", request=request) from None
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"request failed: {type(exc).__name__}", request=request) from None
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            # Let the connector's transports finish closing before the loop moves on.
            await asyncio.sleep(0)
