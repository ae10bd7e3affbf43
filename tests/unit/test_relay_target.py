"""The relay target against the simulator on 127.0.0.1: one fetch per poll through the
account's client, the last good body served through rate limiting up to its staleness
bound, malformed bodies refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.core.errors import InvalidResponse, LimitExceeded, UpstreamError
from exporter.core.exposition import Rendered
from exporter.core.scope import Scope
from exporter.simulator import app as sim_app
from exporter.simulator.state import SimState
from exporter.sources.relay.names import BASETEN_ORG_PREFIX
from exporter.sources.relay.rules import RelayRules
from exporter.sources.relay.target import ACCEPT, RelaySettings, RelayTarget
from exporter.upstream.api import Clients
from exporter.upstream.client import UpstreamStats, VendorClient
from tests.helpers import counted, exposition, mock_clients

KEY = "relay-key"
SCOPE = Scope("prod", (("team", "ml"),), max_series=10_000)


@dataclass
class Sim:
    url: str
    http: httpx.AsyncClient
    clients: Clients
    stats: UpstreamStats

    async def requests(self, route: str) -> list[int]:
        log = (await self.http.get("/_sim/requests/log", params={"route": route})).json()
        return [e["status"] for e in log]

    def settings(self, **changes: object) -> RelaySettings:
        base: dict[str, object] = {
            "vendor": "baseten",
            "name": "org",
            "url": f"{self.url}/metrics",
            "interval": 30.0,
            "timeout": 10.0,
            "stale_after": 120.0,
            "auth_scheme": "Api-Key",
            "rules": RelayRules(prefix=BASETEN_ORG_PREFIX),
            "scope": SCOPE,
        }
        return RelaySettings(**(base | changes))  # type: ignore[arg-type]


def run(body: Callable[[Sim], Awaitable[None]], clock: Callable[[], float] = time.time) -> None:
    async def main() -> None:
        async with simulator(clock) as sim:
            await body(sim)

    asyncio.run(main())


@asynccontextmanager
async def simulator(clock: Callable[[], float]) -> AsyncIterator[Sim]:
    """The simulator on ``clock``, and the ``prod`` account of both vendors pointing at it."""
    runner, url = await sim_app.start(SimState(api_keys=frozenset({KEY}), clock=clock), "127.0.0.1", 0)
    stats = UpstreamStats(account="prod")
    clients = Clients()
    clients.replace(
        {
            (vendor, "prod"): VendorClient(vendor, url, KEY, max_connections=2, stats=stats)
            for vendor in ("baseten", "together")
        }
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Sim(url, http, clients, stats)
    finally:
        for client in clients.all():
            await client.aclose()
        await runner.cleanup()


def samples(rendered: Rendered) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = exposition([rendered]).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_a_poll_relays_the_organisation_endpoint_exactly_with_the_targets_labels() -> None:
    async def body(sim: Sim) -> None:
        target = RelayTarget(sim.clients, sim.settings())
        assert (target.id, target.source) == ("baseten_relay@prod/org", "baseten_relay")
        got = samples(await target.poll(time.time()))
        direct = (await sim.http.get("/metrics", headers={"Authorization": f"Api-Key {KEY}"})).text
        expected = {
            ("relay_" + s.name, frozenset({**s.labels, "account": "prod", "team": "ml"}.items())): s.value
            for fam in text_string_to_metric_families(direct)
            for s in fam.samples
        }
        assert got == expected
        assert len(got) > 100
        assert await sim.requests("/metrics") == [200, 200]
        log = (await sim.http.get("/_sim/requests/log", params={"route": "/metrics"})).json()
        assert all(e["org"] == "default" for e in log)

    # The vendor's values stand still: the poll and the direct read see the same body.
    run(body, clock=lambda: 1_770_460_200.0)


def test_each_poll_is_one_request_counted_in_the_accounts_stats() -> None:
    async def body(sim: Sim) -> None:
        await sim.http.post("/_sim/baseten/org-metrics", json={"limit": 100})
        target = RelayTarget(sim.clients, sim.settings())
        for _ in range(3):
            await target.poll(time.time())
        assert await sim.requests("/metrics") == [200, 200, 200]
        queue = {"source": "baseten_relay", "endpoint": "/metrics", "code": "200", "account": "prod"}
        assert counted(sim.stats.requests, **queue) == 3

    run(body)


def test_a_rate_limited_poll_serves_the_last_body_until_its_staleness_bound() -> None:
    async def body(sim: Sim) -> None:
        await sim.http.post("/_sim/baseten/org-metrics", json={"limit": 1, "window": 600})
        target = RelayTarget(sim.clients, sim.settings(stale_after=120.0))
        now = time.time()
        first = await target.poll(now)
        # The vendor answers 429 (Retry-After: 600): the same body, the target up.
        assert await target.poll(now + 30) is first
        # The client waits out Retry-After: no request at all, the body served again.
        assert await target.poll(now + 60) is first
        assert await sim.requests("/metrics") == [200, 429]
        assert target.counts.held == 2
        assert target.body_fetched_at == now
        # Past the bound the body is dropped: the poll fails with the vendor's reason,
        # and says that what the target served is outdated (the store drops it at once) ...
        with pytest.raises(UpstreamError) as caught:
            await target.poll(now + 121)
        assert (caught.value.reason, caught.value.outdated) == ("rate_limited", True)
        assert caught.value.detail.endswith("older than stale_after (120s), is dropped")
        assert target.body_fetched_at is None
        # ... and the body is never served again, even within a bound from now.
        with pytest.raises(UpstreamError) as again:
            await target.poll(now + 122)
        assert not again.value.outdated
        assert await sim.requests("/metrics") == [200, 429]
        assert target.counts.held == 2

    run(body)


def test_a_malformed_body_fails_the_poll_and_keeps_the_last_good_one() -> None:
    async def body(sim: Sim) -> None:
        await sim.http.post("/_sim/baseten/org-metrics", json={"limit": 100})
        target = RelayTarget(sim.clients, sim.settings())
        now = time.time()
        good = await target.poll(now)
        fault = {"path": "/metrics", "kind": "body", "body": "# TYPE x gauge\nx{a=1} 2\n", "times": 1}
        await sim.http.post("/_sim/faults", json=fault)
        with pytest.raises(InvalidResponse) as caught:
            await target.poll(now + 30)
        assert caught.value.detail.startswith("line 2: the value of label a must be a double-quoted string")
        # Then the vendor rate-limits: what is served is the last good body.
        await sim.http.post("/_sim/faults", json={"path": "/metrics", "kind": "status", "status": 429})
        assert await target.poll(now + 60) is good

    run(body)


def test_a_generic_endpoint_with_a_bearer_key_and_a_path_under_the_base_url() -> None:
    async def body(sim: Sim) -> None:
        settings = sim.settings(
            vendor="together",
            name="dedicated",
            url="/v1/dedicated-endpoints/metrics",
            endpoint="/v1/dedicated-endpoints/metrics",
            auth_scheme="Bearer",
            rules=RelayRules(),
        )
        got = await RelayTarget(sim.clients, settings).poll(time.time())
        assert sorted(got.meta) == [
            "together_endpoint_requests_in_flight",
            "together_endpoint_requests_total",
            "together_endpoint_server_latency_seconds",
        ]
        # The wrong scheme for an endpoint is refused like a wrong key.
        wrong = RelayTarget(sim.clients, sim.settings(auth_scheme="Bearer"))
        with pytest.raises(UpstreamError) as caught:
            await wrong.poll(time.time())
        assert caught.value.reason == "unauthorized"

    run(body)


def test_a_reload_restyles_the_held_body_or_forgets_it_when_names_change() -> None:
    async def body(sim: Sim) -> None:
        await sim.http.post("/_sim/baseten/org-metrics", json={"limit": 1, "window": 600})
        target = RelayTarget(sim.clients, sim.settings())
        now = time.time()
        await target.poll(now)
        relabelled = Scope("prod", (("team", "infra"),), max_series=10_000)
        assert target.reconfigure(RelayTarget(sim.clients, sim.settings(scope=relabelled)))
        held = await target.poll(now + 30)
        assert all(dict(labels)["team"] == "infra" for _, labels in samples(held))
        assert target.reconfigure(RelayTarget(sim.clients, sim.settings(rules=RelayRules(prefix="org_"))))
        with pytest.raises(UpstreamError):
            await target.poll(now + 60)

    run(body)


def test_a_held_body_past_a_series_limit_lowered_by_a_reload_is_dropped_at_once() -> None:
    async def body(sim: Sim) -> None:
        await sim.http.post("/_sim/baseten/org-metrics", json={"limit": 1, "window": 600})
        target = RelayTarget(sim.clients, sim.settings())
        now = time.time()
        first = await target.poll(now)
        lower = Scope("prod", (("team", "ml"),), max_series=first.series - 1)
        assert target.reconfigure(RelayTarget(sim.clients, sim.settings(scope=lower)))
        with pytest.raises(LimitExceeded) as caught:
            await target.poll(now + 30)
        assert (caught.value.reason, caught.value.outdated) == ("too_many_series", True)
        assert (
            f"has {first.series} series, more than max_series_per_target ({first.series - 1})"
            in caught.value.detail
        )
        assert target.body_fetched_at is None
        assert await sim.requests("/metrics") == [200, 429]

    run(body)


def test_an_openmetrics_answer_is_refused_and_the_relay_asks_for_the_text_format() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            text="# TYPE x counter\nx_total 1\n# EOF\n",
            headers={"Content-Type": "application/openmetrics-text"},
        )

    async def body() -> None:
        clients = mock_clients("baseten", handler, UpstreamStats())
        settings = RelaySettings("baseten", "org", "https://app.baseten.co/metrics", 30, 5, 120, "Api-Key")
        with pytest.raises(InvalidResponse, match="answered in OpenMetrics"):
            await RelayTarget(clients, settings).poll(time.time())

    asyncio.run(body())
    assert str(seen[0].url) == "https://app.baseten.co/metrics"
    assert seen[0].headers["Authorization"] == "Api-Key secret-key"
    assert seen[0].headers["Accept"] == ACCEPT


def test_a_relay_asks_once_per_poll_and_caps_the_body_at_its_own_bound() -> None:
    """A 5xx is not retried (the next poll is the retry: the vendor's limit is per
    organisation), and the body's cap is the relay's, not the account client's."""
    answers: list[httpx.Response] = []
    body = "# TYPE x gauge\n" + "".join(f'x{{i="{i}"}} {i}\n' for i in range(2000))

    def handler(request: httpx.Request) -> httpx.Response:
        answers.append(httpx.Response(503 if not answers else 200, text=body))
        return answers[-1]

    async def run() -> None:
        clients = mock_clients("baseten", handler, UpstreamStats())
        # The account's client reads at most 16 KiB; the relay's body is about 24 KiB.
        client = clients.get("baseten")
        client.max_body_bytes = 16 * 1024
        base = RelaySettings("baseten", "org", "https://app.baseten.co/metrics", 30, 5, 120, "Api-Key")
        target = RelayTarget(clients, replace(base, max_body_bytes=64 * 1024))
        with pytest.raises(UpstreamError) as caught:
            await target.poll(time.time())
        assert caught.value.reason == "server_error"
        assert len(answers) == 1
        assert (await target.poll(time.time())).series == 2000
        small = RelayTarget(clients, replace(base, max_body_bytes=8 * 1024))
        with pytest.raises(UpstreamError) as too_big:
            await small.poll(time.time())
        assert too_big.value.reason == "body_too_large"
        assert "8192 bytes" in too_big.value.detail

    asyncio.run(run())
