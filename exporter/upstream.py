"""HTTP access to the vendor APIs: one shared client per vendor, errors as reasons.

Every failure becomes an ``UpstreamError`` with a short, bounded ``reason`` (used as a
label value and on the status page) and a human ``detail``. Neither ever contains the
API key: we never format request headers, and the scrubber catches library text. Every
answer is scrubbed of the configured keys before it is parsed, so a key the vendor
echoes in a data field reaches no label, id or detail either.

Each vendor's client also owns what keeps us polite to that vendor: retries with
backoff (``exporter.retry``), the request budget (``exporter.budget``) and the vendor's
own ``Retry-After`` hints, so every source gets them by calling ``request_json``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from exporter import __version__
from exporter.budget import BudgetExhausted, RequestBudget
from exporter.errors import InvalidResponse, UpstreamError, reason_for_status
from exporter.logs import SCRUBBER
from exporter.pool import AiohttpTransport
from exporter.retry import (
    MIN_ATTEMPT_SECONDS,
    POLL_DEADLINE,
    backoff,
    is_retryable,
    make_stop,
    parse_http_date,
    parse_retry_hint,
)
from exporter.scope import DEFAULT_ACCOUNT
from exporter.selfmetrics import UpstreamStats as UpstreamStats

MAX_BODY_BYTES = 16 * 1024 * 1024


def _error_message(body: bytes) -> str:
    """The vendor's own error message, if the body carries one, cut short."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if isinstance(doc, dict):
        inner = doc.get("error", doc)
        if isinstance(inner, dict):
            msg = inner.get("message")
            if isinstance(msg, str):
                return msg[:200]
    return ""


class Reply(NamedTuple):
    """A decoded answer: its status, its JSON document and the vendor's clock at the time.

    ``date`` is the answer's ``Date`` header (Unix seconds), None without one: the
    vendor's own notion of "now", for queries by the vendor's time that must not depend
    on this machine's clock.
    """

    status: int
    doc: Any
    date: float | None


RequestKey = tuple[str, str, tuple[tuple[str, str], ...]]


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
        self.budget = RequestBudget(requests_per_second)
        stats.budget_wait_seconds.setdefault(vendor, 0.0)
        stats.budget_refusals[vendor] += 0
        self.max_body_bytes = max_body_bytes
        # Monotonic time before which a request must not be sent again, by request,
        # from the vendor's Retry-After / x-ratelimit-reset.
        self._not_before: dict[RequestKey, float] = {}
        self._transport = transport or AiohttpTransport(max_connections)
        # Builds each request (URL, headers, timeouts) and closes the transport; the
        # requests themselves go straight to the transport (see _attempt), so no
        # cookie jar is involved: a cookie set by one target's answer is never sent
        # with another target's request.
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"inference-exporter/{__version__}"},
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
    ) -> Reply:
        """Send a request, retrying what can heal, and decode its JSON body.

        Returns the status, document and vendor time for statuses in ``ok_statuses``; anything else
        raises UpstreamError. ``endpoint`` is the path template, used as a label.
        Attempts and backoff waits all end before the current poll's deadline
        (see ``exporter.retry``); outside a poll, before ``timeout`` from now.
        """
        deadline = POLL_DEADLINE.get()
        if deadline is None:
            deadline = time.monotonic() + timeout
        key: RequestKey = (method, path, tuple(sorted((str(k), str(v)) for k, v in (params or {}).items())))

        # The failure that caused the last retry: if the retry then finds no budget slot,
        # that failure, not the local refusal, is what the vendor did.
        failures: list[BaseException] = []

        def count_retry(state: RetryCallState) -> None:
            self.stats.retries[(source, endpoint)] += 1
            exc = state.outcome.exception() if state.outcome is not None else None
            if exc is not None:
                failures[:] = [exc]

        def attempt() -> Awaitable[Reply]:
            return self._attempt(
                method, path, key, deadline, source, endpoint, timeout, params, json_body, ok_statuses
            )

        # Most requests succeed at once, and setting up tenacity's loop for each one
        # cost about a tenth of a request's CPU. So the first attempt runs on its own;
        # a failure worth retrying starts the loop, which takes that failure as its
        # own first attempt: the same waits, stop and retry counting as ever.
        first_failure: BaseException | None = None
        try:
            return await attempt()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            first_failure = exc
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            wait=backoff,
            stop=make_stop(deadline),
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            async for retry in retrying:
                with retry:
                    if first_failure is not None:
                        failed, first_failure = first_failure, None
                        raise failed
                    return await attempt()
        except UpstreamError as exc:
            if exc.reason == "budget_exhausted" and failures:
                raise failures[0] from None
            raise
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover

    async def _wait_turn(self, key: RequestKey, deadline: float, method: str, endpoint: str) -> None:
        """Wait out the vendor's last Retry-After for this request, then for a budget slot."""
        now = time.monotonic()
        not_before = self._not_before.get(key)
        if not_before is not None:
            if not_before <= now:
                del self._not_before[key]
            elif not_before + MIN_ATTEMPT_SECONDS >= deadline:
                raise UpstreamError(
                    "rate_limited",
                    f"{method} {endpoint}: the vendor asked to wait {not_before - now:.1f}s more",
                    retry_after=not_before - now,
                )
            else:
                await asyncio.sleep(not_before - now)
        try:
            wait = self.budget.reserve(deadline - MIN_ATTEMPT_SECONDS)
        except BudgetExhausted as exc:
            self.stats.budget_refusals[self.vendor] += 1
            raise UpstreamError(
                "budget_exhausted",
                f"{method} {endpoint}: no request slot within the poll (next in {exc.wait:.1f}s)",
            ) from None
        if wait > 0:
            self.stats.budget_wait_seconds[self.vendor] = (
                self.stats.budget_wait_seconds.get(self.vendor, 0.0) + wait
            )
            await asyncio.sleep(wait)

    def _remember_hint(self, key: RequestKey, hint: float | None) -> None:
        if not hint:
            return
        now = time.monotonic()
        if len(self._not_before) > 1000:
            self._not_before = {k: t for k, t in self._not_before.items() if t > now}
        self._not_before[key] = now + hint

    async def _attempt(
        self,
        method: str,
        path: str,
        key: RequestKey,
        deadline: float,
        source: str,
        endpoint: str,
        timeout: float,
        params: Mapping[str, Any] | None,
        json_body: Any,
        ok_statuses: tuple[int, ...],
    ) -> Reply:
        await self._wait_turn(key, deadline, method, endpoint)
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise UpstreamError("timeout", f"{method} {endpoint}: no time left in the poll")
        try:
            req = self._client.build_request(method, self.url(path, params), json=json_body, timeout=timeout)
            # httpx's transport interface rather than the client's send: what send
            # adds is auth flows, redirects and cookies, none of which a bearer-key API
            # needs, and it cost about a tenth of a request's CPU.
            resp = await self._transport.handle_async_request(req)
            resp.request = req
        except httpx.TimeoutException:
            self.stats.count(source, endpoint, "timeout")
            raise UpstreamError("timeout", f"{method} {endpoint} timed out after {timeout:g}s") from None
        except httpx.HTTPError as exc:
            self.stats.count(source, endpoint, "error")
            raise UpstreamError("connection_error", f"{method} {endpoint}: {type(exc).__name__}") from None
        try:
            body = bytearray()
            try:
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        self.stats.count(source, endpoint, str(resp.status_code))
                        raise UpstreamError(
                            "body_too_large", f"{method} {endpoint}: body over {self.max_body_bytes} bytes"
                        )
            except httpx.TimeoutException:
                self.stats.count(source, endpoint, "timeout")
                raise UpstreamError("timeout", f"{method} {endpoint}: body timed out") from None
            except httpx.HTTPError as exc:
                self.stats.count(source, endpoint, "error")
                raise UpstreamError(
                    "connection_error", f"{method} {endpoint}: {type(exc).__name__}"
                ) from None
        finally:
            await resp.aclose()
        # Vendor data may echo a key back (in a name, a status, an error message): it is
        # cut out here, before any of it becomes a label, an id, a name or a detail.
        body = SCRUBBER.scrub_bytes(body)
        status = resp.status_code
        self.stats.count(source, endpoint, str(status))
        if status not in ok_statuses:
            msg = _error_message(bytes(body))
            hint = parse_retry_hint(resp.headers, time.time()) if status == 429 or status >= 500 else None
            self._remember_hint(key, hint)
            raise UpstreamError(
                reason_for_status(status),
                f"{method} {endpoint} answered {status}" + (f": {msg}" if msg else ""),
                retry_after=hint,
            )
        try:
            return Reply(status, json.loads(body), parse_http_date(resp.headers.get("date")))
        except ValueError:
            raise InvalidResponse(f"{method} {endpoint}: body is not valid JSON") from None


class Clients:
    """The current client of each vendor account, by (vendor, account name).

    Targets look their client up at poll time through this holder, so a reload that
    changes an account's key or URL swaps the client without rebuilding any target.
    """

    def __init__(self) -> None:
        self._by_account: dict[tuple[str, str], VendorClient] = {}

    def get(self, vendor: str, account: str = DEFAULT_ACCOUNT) -> VendorClient:
        try:
            return self._by_account[(vendor, account)]
        except KeyError:
            raise UpstreamError("not_configured", f"no {vendor} account {account!r} in the config") from None

    def find(self, vendor: str, account: str = DEFAULT_ACCOUNT) -> VendorClient | None:
        return self._by_account.get((vendor, account))

    def replace(self, clients: Mapping[tuple[str, str], VendorClient]) -> list[VendorClient]:
        """Install new clients; return the ones replaced, for the caller to close."""
        old = [c for k, c in self._by_account.items() if clients.get(k) is not c]
        self._by_account = dict(clients)
        return old

    def all(self) -> list[VendorClient]:
        return list(self._by_account.values())
