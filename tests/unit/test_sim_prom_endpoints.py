"""The simulator's Prometheus endpoints: auth schemes, 6 requests a minute per organisation,
and a Baseten body that agrees with the management API it serves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.core.scope import Scope
from exporter.simulator import app as sim_app
from exporter.simulator.prom_endpoints import RateLimit
from exporter.simulator.state import SimState
from exporter.sources.relay.translate import relay

A, B = "key-a", "key-b"
ORG = "/metrics"
DEDICATED = "/v1/dedicated-endpoints/metrics"
# A time of the simulator's clock on a whole minute.
T0 = 1_770_460_200.0


def run(body: Callable[[httpx.AsyncClient, list[float]], Awaitable[None]]) -> None:
    clock = [T0]

    async def main() -> None:
        state = SimState(api_keys=frozenset({A}), org_keys={B: "other"}, clock=lambda: clock[0])
        runner, url = await sim_app.start(state, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                await body(http, clock)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def api_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {key}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def values(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {
        frozenset(s.labels.items()): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    }


def test_each_endpoint_takes_its_own_auth_scheme() -> None:
    async def body(http: httpx.AsyncClient, clock: list[float]) -> None:
        assert (await http.get(ORG, headers=bearer(A))).status_code == 401
        assert (await http.get(ORG, headers=api_key("nobody"))).status_code == 401
        assert (await http.get(DEDICATED, headers=api_key(A))).status_code == 401
        org = await http.get(ORG, headers=api_key(A))
        assert org.status_code == 200
        assert org.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert (await http.get(DEDICATED, headers=bearer(A))).status_code == 200

    run(body)


def test_six_requests_a_minute_per_organisation_then_429_with_retry_after() -> None:
    async def body(http: httpx.AsyncClient, clock: list[float]) -> None:
        codes = [(await http.get(ORG, headers=api_key(A))).status_code for _ in range(7)]
        assert codes == [200] * 6 + [429]
        refused = await http.get(ORG, headers=api_key(A))
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # Another organisation, and the other endpoint, have limits of their own.
        assert (await http.get(ORG, headers=api_key(B))).status_code == 200
        assert (await http.get(DEDICATED, headers=bearer(A))).status_code == 200
        # The limit is scriptable per organisation.
        await http.post("/_sim/baseten/org-metrics", params={"org": "other"}, json={"limit": 1})
        assert (await http.get(ORG, headers=api_key(B))).status_code == 429

    run(body)


def test_a_rate_limit_frees_a_slot_a_window_after_the_oldest_request() -> None:
    now = [0.0]
    limit = RateLimit(2, 60.0, clock=lambda: now[0])
    assert limit.admit() is None
    now[0] = 10.0
    assert limit.admit() is None
    assert limit.admit() == 50.0
    now[0] = 60.0
    assert limit.admit() is None
    assert limit.admit() == 10.0


def test_baseten_counters_agree_with_the_management_apis_step_totals() -> None:
    async def body(http: httpx.AsyncClient, clock: list[float]) -> None:
        await http.post("/_sim/baseten", json={"lag": 0})
        first = (await http.get(ORG, headers=api_key(A))).text
        clock[0] = T0 + 300
        second = (await http.get(ORG, headers=api_key(A))).text
        params: dict[str, str | int] = {
            "mode": "SERIES",
            "metrics": "baseten_inference_requests_total",
            "start_epoch_millis": int(T0 * 1000),
            "end_epoch_millis": int((T0 + 300) * 1000),
        }
        doc = (
            await http.get(
                "/v1/models/m2whisper/deployments/d2prod/metrics", params=params, headers=bearer(A)
            )
        ).json()
        sets = doc["metric_descriptors"][0]["label_sets"]
        totals = {
            s["status"]: sum(v["values"][0][i] for v in doc["metric_values"]) for i, s in enumerate(sets)
        }
        before = values(first, "baseten_inference_requests_total")
        after = values(second, "baseten_inference_requests_total")
        for status, code in (("2xx", "200"), ("4xx", "429"), ("5xx", "500")):
            key = next(k for k in after if ("deployment_id", "d2prod") in k and ("status_code", code) in k)
            assert after[key] - before[key] == totals[status], status
        assert totals["2xx"] > 0

    run(body)


def test_baseten_histograms_count_every_request_and_the_body_relays_cleanly() -> None:
    async def body(http: httpx.AsyncClient, clock: list[float]) -> None:
        text = (await http.get(ORG, headers=api_key(A))).text
        requests = values(text, "baseten_inference_requests_total")
        name = "baseten_end_to_end_response_time_seconds"
        counts = values(text, f"{name}_count")
        assert counts == requests
        buckets = values(text, f"{name}_bucket")
        for labels, count in counts.items():
            row = sorted(
                (
                    (float(dict(k)["le"]), v)
                    for k, v in buckets.items()
                    if k - {("le", dict(k)["le"])} == labels
                )
            )
            assert [v for _, v in row] == sorted(v for _, v in row)
            assert row[-1] == (float("inf"), count)
        result = relay(text.encode(), Scope("a", max_series=100_000))
        assert result.duplicates == result.too_long == 0 and result.series > 100
        generic = (await http.get(DEDICATED, headers=bearer(A))).text
        assert relay(generic.encode(), Scope("a")).series == 2 * (3 + 1 + 5)

    run(body)
