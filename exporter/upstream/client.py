"""HTTP access to the vendor APIs: the one path every vendor request takes.

A request is built by httpx (the client API the rest of the exporter speaks) and sent
over aiohttp by httpx-aiohttp's transport; :meth:`VendorClient.request_json` runs it
in one retry loop, and every failure becomes an ``UpstreamError`` in one function,
:func:`exporter.upstream.failure.upstream_error`, with a short, bounded ``reason`` (used as a label value and on
the status page) and a human ``detail``. Neither ever contains the API key: we never
format request headers, and the scrubber catches library text.

Whatever answers (the vendor, a proxy, anyone on the path of an ``http://`` URL) is
bounded here: each attempt as a whole, body included, ends within the request's
timeout; the body's content coding is undone by ``exporter.upstream.encoding`` in pieces
counted against the body cap as they are produced; and the JSON is read by
``exporter.upstream.vendorjson``, which refuses what cannot be carried and scrubs what was parsed.

Each vendor's client also owns what keeps us polite to that vendor: retries with
backoff (the rules are in ``exporter.upstream.retry``), the request budget
(``exporter.upstream.budget``) and the vendor's own ``Retry-After`` hints, so every source gets
them: its typed API (``exporter.upstream.api``) calls ``request_json``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from exporter import __version__
from exporter.core.errors import UpstreamError
from exporter.core.logs import SCRUBBER
from exporter.core.selfmetrics import UpstreamStats as UpstreamStats
from exporter.upstream.encoding import VENDOR_ACCEPT_ENCODING, BodyDecoder, UndecodableBody, content_coding
from exporter.upstream.failure import TRANSPORT_ERRORS, Answer, address_setting, host_port, upstream_error
from exporter.upstream.pacing import RequestPacer
from exporter.upstream.ratelimit import read_rate_limit
from exporter.upstream.retry import (
    MAX_ATTEMPTS,
    POLL_DEADLINE,
    parse_http_date,
    retry_wait,
)
from exporter.upstream.urlcache import UrlCache
from exporter.upstream.vendorjson import read_json

MAX_BODY_BYTES = 16 * 1024 * 1024


class Reply(NamedTuple):
    """A decoded answer: its status, its JSON document and the vendor's clock at the time.

    ``date`` is the answer's ``Date`` header (Unix seconds), None without one: the
    vendor's own notion of "now", for queries by the vendor's time that must not depend
    on this machine's clock.
    """

    status: int
    doc: Any
    date: float | None


class RawReply(NamedTuple):
    """An answer's body as it came (its content coding undone); ``date`` as in ``Reply``."""

    status: int
    body: bytes
    content_type: str
    date: float | None


def aiohttp_transport(max_connections: int) -> AiohttpTransport:
    """httpx-aiohttp's transport, over an aiohttp session with at most ``max_connections``.

    aiohttp's HTTP parser is in C and its pool hands out connections from a plain
    queue, where httpx's default transport runs h11 in pure Python on anyio and costs
    several times the CPU per request (bench/README.md). The session is ours rather
    than the transport's default one because that one keeps cookies, and a cookie set
    by one target's answer must never go out with another target's request. It is
    created on first use, inside the loop it belongs to.
    """

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=60),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    return AiohttpTransport(client=session)


class _Call(NamedTuple):
    """One request_json call: what every attempt at it sends, and how it is counted."""

    method: str
    url: str
    # ``url`` as httpx's URL, parsed from it.
    parsed: httpx.URL
    json_body: Any
    source: str
    endpoint: str
    timeout: float
    ok_statuses: tuple[int, ...]
    # Headers other than the client's own; the body returned as it came (``request_raw``).
    headers: httpx.Headers | None = None
    raw: bool = False
    # The body cap of this request, when it is not the client's (a relayed endpoint's).
    max_body_bytes: int | None = None
    # Most attempts at it (retry_wait's own bound applies too).
    max_attempts: int = MAX_ATTEMPTS

    @property
    def key(self) -> tuple[str, str]:
        """The request, as the vendor's Retry-After hints are remembered by."""
        return self.method, self.url

    @property
    def where(self) -> str:
        """host:port of the request, for its failures (a relayed endpoint may live on
        another host than the API)."""
        return host_port(self.parsed)

    @property
    def what(self) -> str:
        return f"{self.method} {self.endpoint}"


class VendorClient:
    """One vendor's API: base URL, bearer auth, a bounded pool, retries and a request budget.

    Every request of every target of the vendor goes through :meth:`request_json`, so
    the budget (requests per second) holds across targets and across retries, and a
    ``Retry-After`` seen on one request holds back the next polls of that same request.
    """

    def __init__(
        self,
        vendor: str,
        base_url: str,
        api_key: str,
        *,
        max_connections: int,
        stats: UpstreamStats,
        requests_per_second: float | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.stats = stats
        self.pacer = RequestPacer(vendor, stats, requests_per_second)
        self.max_body_bytes = max_body_bytes
        self._transport = transport or aiohttp_transport(max_connections)
        # One per connection of the pool: a request takes one before its timeout starts,
        # so waiting for a free connection (our own queue, not the vendor's slowness)
        # is never counted against the vendor; the poll's deadline bounds that wait.
        self._slots = asyncio.Semaphore(max_connections)
        self._urls = UrlCache()
        # Gives each request its headers and closes the transport; the requests
        # themselves go straight to the transport (see _send), so no cookie jar is
        # involved on httpx's side either.
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"inference-exporter/{__version__}",
                "Accept-Encoding": VENDOR_ACCEPT_ENCODING,
            },
            transport=self._transport,
            follow_redirects=False,
        )

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The absolute URL of ``path`` (relative to the base URL) with ``params``
        (values: str, int, or lists of them), as one string.

        httpx would parse a relative URL, merge it into the base URL and parse it
        again to add the parameters: three parses that checked every character of a
        long Baseten query, a large share of a Baseten poll's CPU. One parse of the
        whole string gives the same URL.
        """
        url = f"{self.base_url}/{path.lstrip('/')}"
        return f"{url}?{urlencode(params, doseq=True)}" if params else url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        source: str,
        endpoint: str,
        timeout: float,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        ok_statuses: tuple[int, ...] = (200,),
        repeated: bool = False,
    ) -> Reply:
        """Send a request, retrying what can heal, and decode its JSON body.

        Returns the status, document and vendor time for statuses in ``ok_statuses``; anything else
        raises UpstreamError. ``endpoint`` is the path template, used as a label.
        Attempts and backoff waits all end before the current poll's deadline
        (see ``exporter.upstream.retry``); outside a poll, before ``timeout`` from now.
        ``repeated``: the caller sends this same request at every poll (a target's
        fixed read), so its URL is parsed once and kept (``exporter.upstream.urlcache``).
        """
        text = self.url(path, params)
        url = self._urls.get(text) if repeated else httpx.URL(text)
        reply = await self._run(_Call(method, text, url, json_body, source, endpoint, timeout, ok_statuses))
        assert isinstance(reply, Reply)
        return reply

    async def request_raw(
        self,
        url: str,
        *,
        source: str,
        endpoint: str,
        timeout: float,
        auth_scheme: str = "Bearer",
        accept: str | None = None,
        max_body_bytes: int | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> RawReply:
        """GET a body that is not JSON (a vendor's Prometheus text), as ``request_json``
        does: the same retries, budget and ``Retry-After`` hints. ``url`` may be absolute
        (such an endpoint may live on another host than the API, taking the same key);
        ``auth_scheme`` is the word before the key (Baseten's metrics endpoint: ``Api-Key``);
        ``max_body_bytes`` caps this body instead of the client's cap (an organisation's
        whole metrics body is far bigger than any JSON answer); ``max_attempts`` bounds
        the retries (1: none, for an endpoint whose rate limit has no room for them)."""
        text = url if "://" in url else self.url(url)
        # A copy per request: such an endpoint is read once per interval.
        headers = self._client.headers.copy()
        headers["Authorization"] = f"{auth_scheme} {headers['Authorization'].partition(' ')[2]}"
        if accept is not None:
            headers["Accept"] = accept
        call = _Call(
            "GET",
            text,
            self._urls.get(text),
            None,
            source,
            endpoint,
            timeout,
            (200,),
            headers,
            True,
            max_body_bytes,
            max_attempts,
        )
        reply = await self._run(call)
        assert isinstance(reply, RawReply)
        return reply

    async def _run(self, call: _Call) -> Reply | RawReply:
        """One request through the retry loop: attempts and backoff waits all end before
        the current poll's deadline (outside a poll, ``call.timeout`` from now)."""
        deadline = POLL_DEADLINE.get()
        if deadline is None:
            deadline = time.monotonic() + call.timeout
        source, endpoint = call.source, call.endpoint
        # The vendor's failure that led to the latest retry.
        retried: UpstreamError | None = None
        attempt = 1
        while True:
            try:
                return await self._attempt(call, deadline)
            except UpstreamError as exc:
                if exc.reason == "budget_exhausted" and retried is not None:
                    # The retry found no request slot in time: what the vendor did is
                    # the news, not the local refusal.
                    try:
                        raise retried from None
                    finally:
                        retried = None  # see _attempt on exceptions and frames
                wait = retry_wait(exc, attempt, deadline) if attempt < call.max_attempts else None
                if wait is None:
                    raise
                # Kept without the frames it was raised through, which hold its answer.
                retried = exc.with_traceback(None)
            self.stats.retries.labels(source, endpoint, self.stats.account).inc()
            attempt += 1
            await asyncio.sleep(wait)

    async def _attempt(self, call: _Call, deadline: float) -> Reply | RawReply:
        """One try: send, read, decode.

        An exception keeps alive the frames it is raised through, and a frame that also
        holds the exception in a variable makes a reference cycle that only a full
        collection frees, with the answer (up to the body cap) in it. So errors are
        raised as they are made, never held in a variable here.
        """
        await self.pacer.wait_turn(call.key, call.what, deadline)
        async with self._slots:
            timeout = min(call.timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise UpstreamError("timeout", f"{call.what}: no time left in the poll")
            response: httpx.Response | None = None
            try:
                # The whole attempt, body included: the transport's own timeouts only
                # bound each wait for the next bytes, which a body trickling in never
                # lets expire.
                async with asyncio.timeout(timeout):
                    response = await self._send(call, timeout)
                    answer = await self._receive(response, self._cap(call))
            except TRANSPORT_ERRORS as exc:
                raise self._unanswered(call, exc, timeout, answering=response is not None) from None
        self.stats.count(call.source, call.endpoint, str(answer.status))
        reading = read_rate_limit(answer.headers, time.time())
        if reading is not None:
            self.stats.rate_limit(self.vendor, call.source, call.endpoint, *reading)
        failure: UndecodableBody | Answer = answer
        if answer.status in call.ok_statuses:
            if answer.refused is not None:
                failure = answer.refused
            elif not answer.too_large:
                date = parse_http_date(answer.headers.get("date"))
                if call.raw:
                    content_type = answer.headers.get("content-type", "")
                    return RawReply(answer.status, bytes(answer.body), content_type, date)
                return Reply(answer.status, read_json(answer.body, call.what), date)
        raise self._unwanted(call, failure, timeout) from None

    def _unanswered(
        self, call: _Call, exc: BaseException, timeout: float, *, answering: bool
    ) -> UpstreamError:
        """The error of an attempt that got no whole answer, counted."""
        error = upstream_error(
            call.what,
            exc,
            timeout=timeout,
            max_body_bytes=self._cap(call),
            where=call.where,
            setting=address_setting(call.url, self.base_url),
            answering=answering,
        )
        self.stats.count(call.source, call.endpoint, "timeout" if error.reason == "timeout" else "error")
        return error

    def _unwanted(self, call: _Call, failure: UndecodableBody | Answer, timeout: float) -> UpstreamError:
        """The error of an answer that is not wanted, its hint on when to ask again remembered."""
        error = upstream_error(
            call.what, failure, timeout=timeout, max_body_bytes=self._cap(call), where=call.where
        )
        self.pacer.remember(call.key, error.retry_after)
        return error

    async def _send(self, call: _Call, timeout: float) -> httpx.Response:
        """Send the request; return the answer once its head has arrived."""
        # A connection is free (see _slots), so waiting for one is not timed (pool=None).
        # The request is built as the client's build_request would build it (its
        # headers, the timeouts as an extension) from a URL parsed once for requests
        # that repeat, and goes to httpx's transport interface rather than the client's
        # send: what build_request and send add is merging per-request settings, auth
        # flows, redirects and cookies, none of which a bearer-key API needs, at a cost
        # in CPU on every request.
        request = httpx.Request(
            call.method,
            call.parsed,
            headers=call.headers or self._client.headers,
            json=call.json_body,
            extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": None}},
        )
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response

    def _cap(self, call: _Call) -> int:
        return self.max_body_bytes if call.max_body_bytes is None else call.max_body_bytes

    async def _receive(self, response: httpx.Response, cap: int) -> Answer:
        """Read the answer's body, decoding it as it arrives and stopping once it is past
        the cap (or as soon as its coding is refused)."""
        body = bytearray()
        refused = None
        decoder = None
        try:
            # The raw bytes: undone here, never by the HTTP library (see exporter.upstream.encoding).
            decoder = BodyDecoder(content_coding(response.headers.get("content-encoding")), cap)
            body = decoder.body
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            async for chunk in stream:
                if not decoder.feed(chunk):
                    break
        except UndecodableBody as exc:
            refused = exc.with_traceback(None)
        finally:
            await response.aclose()
        # Vendor data may echo a key back (in a name, a status, an error message): it is
        # cut out here, before any of it becomes a label, an id, a name or a detail
        # (and what JSON escapes hide from this, after parsing: exporter.upstream.vendorjson).
        too_large = decoder is not None and decoder.over
        return Answer(response.status_code, response.headers, SCRUBBER.scrub_bytes(body), refused, too_large)
