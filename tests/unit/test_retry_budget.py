"""The retry policy, the request budget and the client's retry loop, without processes."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from aiohttp import web

from exporter.core.errors import InvalidResponse, UpstreamError
from exporter.upstream.budget import JITTER_MARGIN, BudgetExhausted, RequestBudget, shard_rate
from exporter.upstream.client import UpstreamStats, VendorClient
from exporter.upstream.retry import MAX_ATTEMPTS, POLL_DEADLINE, is_retryable, parse_retry_hint, retry_wait
from tests.helpers import counted

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"x-ratelimit-reset": "4"}, 4.0),
        ({"x-ratelimit-reset": "4s"}, 4.0),
        ({"x-ratelimit-reset": str(NOW + 9)}, 9.0),  # a Unix time
        ({"retry-after": "2", "x-ratelimit-reset": "5"}, 5.0),  # the longer wins
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "4"}, 4.0),
        # Room left in the window: its reset is no reason to wait (a 503 carries it too).
        ({"x-ratelimit-remaining": "37", "x-ratelimit-reset": "40"}, None),
        ({"x-ratelimit-remaining": "37", "x-ratelimit-reset": "40", "retry-after": "2"}, 2.0),
        ({"x-ratelimit-remaining": "none", "x-ratelimit-reset": "4"}, 4.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "99999999"}, 99999999.0),  # as asked: what it holds back is capped
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, 253402300799.0 - NOW),
    ],
)
def test_parse_retry_hint(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_hint(headers, NOW) == expected


def test_a_retry_after_sent_twice_counts_with_the_longer_wait() -> None:
    """HTTP joins repeated headers with commas: a proxy's Retry-After and the vendor's
    read as one unparseable value, and the vendor's ask was ignored."""
    twice = httpx.Headers([("Retry-After", "5"), ("Retry-After", "30")])
    assert parse_retry_hint(twice, NOW) == 30.0


def test_a_retry_after_of_decades_holds_the_request_back_an_hour_and_says_so() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        return httpx.Response(429, headers={"Retry-After": "999999999"})

    client = client_for(httpx.MockTransport(handler))

    async def two_polls() -> list[UpstreamError]:
        errors = []
        for _ in range(2):
            token = POLL_DEADLINE.set(time.monotonic() + 1.0)
            try:
                await client.request_json("GET", "/q", source="s", endpoint="/q", timeout=0.5)
            except UpstreamError as exc:
                errors.append(exc)
            finally:
                POLL_DEADLINE.reset(token)
        await client.aclose()
        return errors

    first, second = asyncio.run(two_polls())
    held = " (it asked to wait 999999999s: held back 3600s, the longest the exporter waits on a hint)"
    assert first.detail == "GET /q answered 429" + held
    assert second.detail.startswith("GET /q: 3") and second.detail.endswith("s more to wait" + held)
    assert second.retry_after is not None and 3599 < second.retry_after <= 3600
    assert len(seen) == 1


def test_parse_retry_hint_http_date() -> None:
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert parse_retry_hint({"retry-after": "Fri, 15 Jan 2027 08:00:10 GMT"}, now) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("reason", "retry"),
    [
        ("timeout", True),
        ("connection_error", True),
        ("server_error", True),
        ("rate_limited", True),
        ("unauthorized", False),
        ("not_found", False),
        ("client_error", False),
        ("invalid_response", False),
        ("body_too_large", False),
        ("budget_exhausted", False),
    ],
)
def test_what_is_retried(reason: str, retry: bool) -> None:
    assert is_retryable(UpstreamError(reason, "x")) is retry
    assert not is_retryable(ValueError("x"))


def test_retry_wait_backs_off_with_jitter_under_the_vendor_hint_and_the_deadline() -> None:
    far = time.monotonic() + 100
    busy = UpstreamError("server_error", "x")
    # Full jitter: anywhere from 0 up to 0.1 s, doubling with each retry.
    first = [retry_wait(busy, 1, far) for _ in range(200)]
    third = [retry_wait(busy, 3, far) for _ in range(200)]
    assert all(w is not None and 0 <= w <= 0.1 for w in first)
    assert all(w is not None and 0 <= w <= 0.4 for w in third) and max(w or 0 for w in third) > 0.1
    assert len(set(first)) > 100
    assert retry_wait(busy, MAX_ATTEMPTS, far) is None
    assert retry_wait(UpstreamError("not_found", "x"), 1, far) is None
    # The vendor's hint is a floor on the wait, and a wait that leaves no room for an
    # attempt before the deadline means no retry.
    limited = UpstreamError("rate_limited", "x", retry_after=2.0)
    assert retry_wait(limited, 1, far) == 2.0
    assert retry_wait(limited, 1, time.monotonic() + 2.0) is None
    assert retry_wait(busy, 1, time.monotonic() + 0.04) is None


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_budget_spaces_slots_evenly_and_refuses_past_the_deadline() -> None:
    clock = FakeClock()
    budget = RequestBudget(4.0, clock=clock)
    step = (1 + JITTER_MARGIN) / 4
    waits = [budget.reserve(deadline=clock.t + 1.2) for _ in range(5)]
    assert waits == pytest.approx([0.0, step, 2 * step, 3 * step, 4 * step])
    # Four slots never fit in less than a second plus the jitter margin.
    assert 4 * step == pytest.approx(1 + JITTER_MARGIN)
    # The sixth slot (at 5 steps) is past a 1.2s deadline: refused, and nothing is claimed.
    with pytest.raises(BudgetExhausted):
        budget.reserve(deadline=clock.t + 1.2)
    assert budget.reserve(deadline=clock.t + 2.0) == pytest.approx(5 * step)
    # After a quiet spell the next request goes at once, but bursts are not saved up.
    clock.t += 60
    assert budget.reserve(clock.t) == 0.0
    assert budget.reserve(clock.t + 1) == pytest.approx(step)


def test_budget_unlimited_and_shards() -> None:
    assert RequestBudget(None).reserve(0.0) == 0.0
    assert shard_rate(10.0, 4) == 2.5
    with pytest.raises(ValueError):
        shard_rate(10.0, 0)
    with pytest.raises(ValueError):
        RequestBudget(0.0)


def client_for(handler: httpx.MockTransport, rps: float | None = None, cap: int = 1 << 20) -> VendorClient:
    return VendorClient(
        "together",
        "http://vendor.test/v1",
        "secret-key",
        max_connections=2,
        stats=UpstreamStats(),
        requests_per_second=rps,
        max_body_bytes=cap,
        transport=handler,
    )


async def call(client: VendorClient, within: float = 2.0) -> object:
    token = POLL_DEADLINE.set(time.monotonic() + within)
    try:
        doc = (await client.request_json("GET", "/queue/metrics", source="s", endpoint="/e", timeout=0.5)).doc
        return doc
    finally:
        POLL_DEADLINE.reset(token)
        await client.aclose()


def test_transient_errors_are_retried_until_success() -> None:
    answers = [503, 500, 200]
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = answers[len(seen)]
        seen.append(status)
        assert request.headers["authorization"] == "Bearer secret-key"
        return httpx.Response(status, json={"ok": True} if status == 200 else {"error": {"message": "busy"}})

    client = client_for(httpx.MockTransport(handler))
    assert asyncio.run(call(client)) == {"ok": True}
    assert seen == [503, 500, 200]
    assert counted(client.stats.retries, source="s", endpoint="/e") == 2
    assert counted(client.stats.requests, source="s", endpoint="/e", code="503") == 1


def test_attempts_are_bounded() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        return httpx.Response(502)

    with pytest.raises(UpstreamError) as err:
        asyncio.run(call(client_for(httpx.MockTransport(handler)), within=30.0))
    assert err.value.reason == "server_error"
    assert len(seen) == MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("status", "reason"), [(401, "unauthorized"), (404, "not_found"), (400, "client_error")]
)
def test_answers_that_will_not_change_are_not_retried(status: int, reason: str) -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        return httpx.Response(status, json={"error": {"message": "no"}})

    with pytest.raises(UpstreamError) as err:
        asyncio.run(call(client_for(httpx.MockTransport(handler))))
    assert err.value.reason == reason
    assert err.value.detail.endswith(f"answered {status}: no")
    assert len(seen) == 1


def test_retry_after_is_a_floor_on_the_wait() -> None:
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if len(times) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.4"})
        return httpx.Response(200, json=[])

    assert asyncio.run(call(client_for(httpx.MockTransport(handler)))) == []
    assert times[1] - times[0] >= 0.4


def test_retry_after_beyond_the_deadline_fails_at_once_and_holds_the_next_poll() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        return httpx.Response(429, headers={"Retry-After": "30"})

    client = client_for(httpx.MockTransport(handler))

    async def two_polls() -> list[str]:
        reasons = []
        for _ in range(2):
            token = POLL_DEADLINE.set(time.monotonic() + 1.0)
            try:
                await client.request_json("GET", "/q", source="s", endpoint="/q", timeout=0.5)
            except UpstreamError as exc:
                reasons.append(exc.reason)
            finally:
                POLL_DEADLINE.reset(token)
        await client.aclose()
        return reasons

    assert asyncio.run(two_polls()) == ["rate_limited", "rate_limited"]
    assert len(seen) == 1  # the second poll waited on the hint and sent nothing


def test_body_cap_and_invalid_json() -> None:
    def big(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" + b"1," * 5000 + b"1]")

    with pytest.raises(UpstreamError) as err:
        asyncio.run(call(client_for(httpx.MockTransport(big), cap=1024)))
    assert err.value.reason == "body_too_large"

    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"a": ')

    with pytest.raises(InvalidResponse):
        asyncio.run(call(client_for(httpx.MockTransport(bad))))


def test_budget_refuses_when_no_slot_fits_the_poll() -> None:
    def ok(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={})

    client = client_for(httpx.MockTransport(ok), rps=1.0)

    async def burst() -> list[str]:
        out = []
        token = POLL_DEADLINE.set(time.monotonic() + 0.5)
        try:
            for _ in range(3):
                try:
                    await client.request_json("GET", "/q", source="s", endpoint="/q", timeout=0.5)
                    out.append("ok")
                except UpstreamError as exc:
                    out.append(exc.reason)
        finally:
            POLL_DEADLINE.reset(token)
            await client.aclose()
        return out

    assert asyncio.run(burst()) == ["ok", "budget_exhausted", "budget_exhausted"]
    assert counted(client.stats.budget_refusals, vendor="together") == 2


def test_a_retry_refused_by_the_budget_reports_the_vendor_failure() -> None:
    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    # One slot per 1.1 s: the retry after the 503 finds no slot before the 0.8 s deadline.
    client = client_for(httpx.MockTransport(busy), rps=1.0)
    with pytest.raises(UpstreamError) as err:
        asyncio.run(call(client, within=0.8))
    assert err.value.reason == "server_error"
    assert counted(client.stats.budget_refusals, vendor="together") >= 1


def test_retries_end_by_the_poll_deadline() -> None:
    """A vendor that never answers in time: attempts and waits all fit in the poll's time."""
    attempts: list[float] = []

    async def slow(request: web.Request) -> web.Response:
        attempts.append(time.monotonic())
        await asyncio.sleep(5)
        return web.json_response({})

    async def run() -> tuple[str, float]:
        app = web.Application()
        app.router.add_get("/v1/q", slow)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        client = VendorClient(
            "together", f"http://127.0.0.1:{port}/v1", "k", max_connections=4, stats=UpstreamStats()
        )
        t0 = time.monotonic()
        token = POLL_DEADLINE.set(t0 + 0.7)
        try:
            await client.request_json("GET", "/q", source="s", endpoint="/q", timeout=0.5)
            reason = "ok"
        except UpstreamError as exc:
            reason = exc.reason
        finally:
            POLL_DEADLINE.reset(token)
        elapsed = time.monotonic() - t0
        await client.aclose()
        await runner.cleanup()
        return reason, elapsed

    reason, elapsed = asyncio.run(run())
    assert reason == "timeout"
    assert len(attempts) >= 2  # the first timed out after 0.5 s and was retried
    # The retry got only the time left, not a fresh 0.5 s: the poll ended near its deadline.
    assert elapsed < 0.7 + 0.4, elapsed


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/queue/metrics", {"model": "org/model name+ü"}),
        (
            "models/m1/deployments/d1/metrics",
            {"mode": "SERIES", "start_epoch_millis": 1, "metrics": ["a", "b&c"]},
        ),
        ("/fine-tunes/ft-1", None),
        ("/fine-tunes/ft 1/metrics", {"global_step_from": 10}),
    ],
)
def test_request_url_is_the_one_httpx_builds_from_params(
    path: str, params: dict[str, str | int | list[str]] | None
) -> None:
    client = client_for(httpx.MockTransport(lambda r: httpx.Response(200)))
    expected = httpx.AsyncClient(base_url=client.base_url).build_request("GET", path, params=params).url
    assert httpx.URL(client.url(path, params)) == expected


def test_cookies_set_by_one_answer_are_not_sent_with_the_next_request() -> None:
    cookies: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cookies.append(request.headers.get("cookie"))
        return httpx.Response(200, json={}, headers={"set-cookie": "session=abc; Path=/"})

    client = client_for(httpx.MockTransport(handler))

    async def twice() -> None:
        token = POLL_DEADLINE.set(time.monotonic() + 2)
        try:
            for _ in range(2):
                await client.request_json("GET", "/queue/metrics", source="s", endpoint="/e", timeout=0.5)
        finally:
            POLL_DEADLINE.reset(token)
            await client.aclose()

    asyncio.run(twice())
    assert cookies == [None, None]
