"""Deployment targets and discovery against an in-process fake of the HTTP API."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from exporter.core.errors import UpstreamError
from exporter.core.scope import FilterRule, MetricFilter, Scope
from exporter.sources.baseten import lists
from exporter.sources.baseten.api import BasetenAPI
from exporter.sources.baseten.config import Effective
from exporter.sources.baseten.deployment import Query, window_bounds
from exporter.sources.baseten.discovery import DeploymentDiscovery, DeploymentDiscoverySettings
from exporter.sources.baseten.target import DeploymentSettings, DeploymentTarget
from exporter.sources.baseten.vendor import DEPLOYMENT_STATUSES
from exporter.upstream.api import Clients
from exporter.upstream.client import UpstreamStats, VendorClient
from tests.helpers import exposition, parse
from tests.unit.baseten_docs import HIST_SETS, STATUS_SETS, desc, response

NOW = 1_700_000_130.0  # 30 s past a minute boundary
ID = {"model_id": "m1", "deployment_id": "d1"}
COUNTER = desc("baseten_inference_requests_total", "COUNTER", "COUNT", STATUS_SETS)
GAUGES = [desc("baseten_replicas_active"), desc("baseten_lat_seconds", "HISTOGRAM", "SECONDS", HIST_SETS)]


def api_for(handler: Callable[[httpx.Request], httpx.Response], account: str = "default") -> BasetenAPI:
    clients = Clients()
    client = VendorClient(
        "baseten",
        "http://baseten.test",
        "secret-key",
        max_connections=2,
        stats=UpstreamStats(),
        transport=httpx.MockTransport(handler),
    )
    clients.replace({("baseten", account): client})
    return BasetenAPI(clients, account)


def series_for(params: dict[str, Any], per_step: float = 4.0) -> dict[str, Any]:
    start, end = int(params["start_epoch_millis"]), int(params["end_epoch_millis"])
    vs = [(t, [[per_step, 1.0, None]]) for t in range(start, end, 60_000)]
    return response("SERIES", [COUNTER], vs, start=start, end=end, step=60)


class FakeBaseten:
    """Answers the metrics endpoint; records every request's query."""

    def __init__(self) -> None:
        self.queries: list[dict[str, Any]] = []
        self.fail_series = False
        self.bad_series = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer secret-key"
        q: dict[str, Any] = {k: v for k, v in request.url.params.items()}
        q["metrics"] = request.url.params.get_list("metrics")
        self.queries.append(q)
        if q["mode"] == "CURRENT":
            doc = response("CURRENT", [*GAUGES, COUNTER], [(0, [[2], [0.1, 0.2, 0.3, 0.15], [0, 0, 0]])])
            return httpx.Response(200, json=doc)
        if self.fail_series:
            return httpx.Response(503, json={"message": "busy"})
        doc = copy.deepcopy(series_for(q))
        if self.bad_series:
            doc["metric_descriptors"][0]["label_sets"][2] = {"status": "2xx"}
        return httpx.Response(200, json=doc)


def effective(**kw: Any) -> Effective:
    base: dict[str, Any] = {
        "mode": "CURRENT",
        "metrics": (),
        "window": 600.0,
        "counter_window": 300.0,
        "delay": 120.0,
    }
    return Effective(**{**base, **kw})


def scrape_of(target: DeploymentTarget, now: float) -> Any:
    return parse(exposition([asyncio.run(target.poll(now))]).decode())


def test_window_bounds_align_to_the_step_and_trail_the_delay() -> None:
    start, end = window_bounds(NOW, 300, 120, 60)
    assert end % 60_000 == 0 and end <= (NOW - 120) * 1000 < end + 60_000
    assert end - start == 300_000
    # Never more than 7 days, even after rounding up to whole steps.
    s7, e7 = window_bounds(NOW, 7 * 86400, 0, 7 * 3600)
    assert e7 - s7 <= 7 * 86400 * 1000
    assert Query.of("CURRENT", (), NOW, 600, 120, 60).params() == {"mode": "CURRENT"}
    summary = Query.of("SUMMARY", ("a", "b"), NOW, 600, 120, 60).params()
    assert summary["metrics"] == ["a", "b"]
    assert summary["end_epoch_millis"] == int(NOW - 120) * 1000
    assert summary["end_epoch_millis"] - summary["start_epoch_millis"] == 600_000


def test_current_mode_reads_counters_from_a_trailing_series_window() -> None:
    fake = FakeBaseten()
    target = DeploymentTarget(
        api_for(fake), "m1", "d1", DeploymentSettings(effective(), interval=30, timeout=5)
    )
    s = scrape_of(target, NOW)
    current, series = fake.queries
    assert current == {"mode": "CURRENT", "metrics": []}
    assert series["mode"] == "SERIES" and series["metrics"] == ["baseten_inference_requests_total"]
    end = int(series["end_epoch_millis"])
    assert end % 60_000 == 0 and end <= (NOW - 120) * 1000
    assert s.value("baseten_replicas_active", **ID) == 2
    assert s.value("baseten_lat_seconds", **ID, quantile="0.9") == 0.2
    # First window is the baseline: counters exist at 0; null series (5xx) do not.
    assert s.value("baseten_inference_requests_total", **ID, status="2xx") == 0
    assert s.value("baseten_inference_requests_total", **ID, status="5xx") is None
    assert s.types["baseten_inference_requests"] == "counter"  # the parser drops _total
    # Polls 30 s apart over overlapping 5-minute windows: each new minute adds once.
    for later in (30, 60, 90, 120, 150):
        s = scrape_of(target, NOW + later)
        new_minutes = int((NOW + later - 120) // 60) - int((NOW - 120) // 60)
        assert s.value("baseten_inference_requests_total", **ID, status="2xx") == 4.0 * new_minutes
        assert s.value("baseten_inference_requests_total", **ID, status="4xx") == 1.0 * new_minutes


def test_the_counter_window_is_read_again_only_once_it_has_moved() -> None:
    fake = FakeBaseten()
    target = DeploymentTarget(
        api_for(fake), "m1", "d1", DeploymentSettings(effective(), interval=20, timeout=5)
    )
    assert (NOW - 120) % 60 == 30
    for later in (0, 10, 20):  # now - delay stays within one minute: the same window
        scrape_of(target, NOW + later)
    assert [q["mode"] for q in fake.queries] == ["CURRENT", "SERIES", "CURRENT", "CURRENT"]
    s = scrape_of(target, NOW + 30)  # the window has moved by one step
    assert [q["mode"] for q in fake.queries][-2:] == ["CURRENT", "SERIES"]
    assert s.value("baseten_inference_requests_total", **ID, status="2xx") == 4.0
    # A failed read is not remembered: the next poll asks for the same window again.
    fake.fail_series = True
    with pytest.raises(UpstreamError):
        asyncio.run(target.poll(NOW + 90))
    fake.fail_series = False
    s = scrape_of(target, NOW + 100)
    assert [q["mode"] for q in fake.queries][-2:] == ["CURRENT", "SERIES"]
    assert s.value("baseten_inference_requests_total", **ID, status="2xx") == 8.0


def test_a_failed_counter_request_fails_the_poll_and_changes_no_state() -> None:
    fake = FakeBaseten()
    target = DeploymentTarget(
        api_for(fake), "m1", "d1", DeploymentSettings(effective(), interval=30, timeout=5)
    )
    scrape_of(target, NOW)
    fake.fail_series = True
    with pytest.raises(UpstreamError) as err:
        asyncio.run(target.poll(NOW + 300))
    assert err.value.reason == "server_error"
    fake.fail_series = False
    fake.bad_series = True  # two label sets that are one series: rejected as a whole
    with pytest.raises(UpstreamError, match="two label sets are the same"):
        asyncio.run(target.poll(NOW + 300))
    fake.bad_series = False
    s = scrape_of(target, NOW + 300)
    # Five new steps, counted once, after the failure.
    assert s.value("baseten_inference_requests_total", **ID, status="2xx") == 20


def test_series_mode_uses_one_request_and_learns_the_step() -> None:
    queries: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params.items())
        queries.append(q)
        start, end = int(q["start_epoch_millis"]), int(q["end_epoch_millis"])
        vs = [(t, [[float(t // 300_000)], [5.0, 1.0, 0.0]]) for t in range(start, end, 300_000)]
        doc = response("SERIES", [GAUGES[0], COUNTER], vs, start=start, end=end, step=300)
        return httpx.Response(200, json=doc)

    req = effective(mode="SERIES", window=3600.0)
    target = DeploymentTarget(api_for(handler), "m1", "d1", DeploymentSettings(req, interval=60, timeout=5))
    scrape_of(target, NOW)
    assert len(queries) == 1 and target.state.step == 300
    end1 = int(queries[0]["end_epoch_millis"])
    s = scrape_of(target, NOW + 900)
    assert len(queries) == 2
    end2 = int(queries[1]["end_epoch_millis"])
    assert end2 % 300_000 == 0
    assert s.value("baseten_replicas_active", **ID) == (end2 - 300_000) // 300_000
    # The grid moved from the first guess (60 s) to the vendor's 300 s: a step that
    # straddles already-counted time is skipped, never counted twice.
    new_steps = [t for t in range(end2 - 3_600_000, end2, 300_000) if t >= end1]
    assert len(new_steps) >= 2
    assert s.value("baseten_inference_requests_total", **ID, status="2xx") == 5.0 * len(new_steps)


MODELS = {
    "models": [
        {"id": "m1", "name": "llama", "extra": 1},
        {"id": "m2", "name": "whisper"},
        {"id": "m3", "name": "gone"},
    ]
}


def dep(i: str, status: str = "ACTIVE", prod: bool = False, env: str | None = None) -> dict[str, Any]:
    return {"id": i, "name": f"n-{i}", "status": status, "is_production": prod, "environment": env}


DEPLOYMENTS = {
    "m1": [
        dep("a", prod=True, env="production"),
        dep("b", env="staging"),
        dep("c", "INACTIVE"),
        dep("d", "NEW_STATE"),
    ],
    "m2": [dep("e", "SCALED_TO_ZERO", prod=True, env="production")],
}


def list_handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/v1/models":
        return httpx.Response(200, json=MODELS)
    model = path.split("/")[3]
    if model not in DEPLOYMENTS:
        return httpx.Response(404, json={"message": "not found"})
    if path.endswith("/deployments"):
        return httpx.Response(200, json={"deployments": DEPLOYMENTS[model]})
    return httpx.Response(200, json=response("CURRENT", [GAUGES[0]], [(0, [[1]])]))


def discovery(api: BasetenAPI, **kw: Any) -> DeploymentDiscovery:
    base: dict[str, Any] = {
        "model_names": frozenset(),
        "environments": frozenset(),
        "production_only": False,
        "skip_statuses": frozenset({"INACTIVE"}),
        "interval": 60.0,
        "timeout": 5.0,
        "deployments": DeploymentSettings(effective(), interval=30.0, timeout=5.0),
    }
    return DeploymentDiscovery(api, 0, DeploymentDiscoverySettings(**{**base, **kw}))


@pytest.mark.parametrize(
    ("kw", "ids"),
    [
        ({}, ["m1/a", "m1/b", "m1/d", "m2/e"]),
        ({"model_names": frozenset({"llama"})}, ["m1/a", "m1/b", "m1/d"]),
        ({"environments": frozenset({"production"})}, ["m1/a", "m2/e"]),
        ({"production_only": True}, ["m1/a", "m2/e"]),
        ({"skip_statuses": frozenset({"INACTIVE", "SCALED_TO_ZERO"})}, ["m1/a", "m1/b", "m1/d"]),
    ],
)
def test_discovery_selects_deployments(kw: dict[str, Any], ids: list[str]) -> None:
    d = discovery(api_for(list_handler), **kw)
    rendered, found = asyncio.run(d.discover(NOW))
    assert [t.id for t in found] == [f"baseten/{i}" for i in ids]
    assert rendered.series == 0


def test_discovered_targets_carry_info_and_refresh_it_on_kept_objects() -> None:
    api = api_for(list_handler)
    d = discovery(api, model_names=frozenset({"llama"}))
    _, found = asyncio.run(d.discover(NOW))
    first = found[0]
    assert isinstance(first, DeploymentTarget)
    s = scrape_of(first, NOW)
    assert (
        s.value(
            "baseten_deployment_info",
            **ID | {"deployment_id": "a"},
            model_name="llama",
            deployment_name="n-a",
            environment="production",
            is_production="true",
        )
        == 1
    )
    assert s.value("baseten_deployment_status", **ID | {"deployment_id": "a"}, status="ACTIVE") == 1
    DEPLOYMENTS["m1"][0] = dep("a", "UPDATING", prod=True, env="production")
    try:
        _, again = asyncio.run(d.discover(NOW + 60))
        # Same id and settings: the daemon keeps `first` and hands it the new metadata.
        assert again[0].settings == first.settings
        first.update_from(again[0])
        assert first.meta is not None and first.meta.status == "UPDATING"
    finally:
        DEPLOYMENTS["m1"][0] = dep("a", prod=True, env="production")


def test_status_is_one_series_per_documented_value_and_an_unknown_one_adds_its_own() -> None:
    ids = (("model_id", "m"), ("deployment_id", "d"))
    known = lists.status_samples(ids, "UNHEALTHY")
    assert len(known) == len(DEPLOYMENT_STATUSES)
    assert [dict(x.labels)["status"] for x in known if x.value == 1] == ["UNHEALTHY"]
    new = lists.status_samples(ids, "MIGRATING")
    assert [dict(x.labels)["status"] for x in new if x.value == 1] == ["MIGRATING"]
    assert len(new) == len(DEPLOYMENT_STATUSES) + 1
    info = lists.info_sample(ids, lists.Meta("llama", "v3", "", "MIGRATING", False))
    assert "status" not in dict(info.labels)


def test_explicit_target_reads_its_metadata_and_survives_list_failures() -> None:
    broken = {"on": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if broken["on"] and request.url.path == "/v1/models":
            return httpx.Response(500)
        return list_handler(request)

    target = DeploymentTarget(
        api_for(handler),
        "m1",
        "b",
        DeploymentSettings(effective(), interval=30, timeout=5, meta_refresh=300.0),
    )
    s = scrape_of(target, NOW)
    assert (
        s.value(
            "baseten_deployment_info",
            model_id="m1",
            deployment_id="b",
            model_name="llama",
            deployment_name="n-b",
            environment="staging",
            is_production="false",
        )
        == 1
    )
    statuses = {lbl["status"]: v for lbl, v in s.series("baseten_deployment_status")}
    assert statuses["ACTIVE"] == 1 and sum(statuses.values()) == 1
    assert set(statuses) == DEPLOYMENT_STATUSES
    broken["on"] = True
    s = scrape_of(target, NOW + 400)
    assert s.value("baseten_replicas_active", model_id="m1", deployment_id="b") == 1
    assert len(s.series("baseten_deployment_info")) == 1
    assert s.value("baseten_deployment_status", model_id="m1", deployment_id="b", status="ACTIVE") == 1


def test_discovery_fails_on_a_bad_list_and_tolerates_a_vanished_model() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"models": [{"id": "m1"}]})
        return list_handler(request)

    with pytest.raises(UpstreamError, match="name is missing"):
        asyncio.run(discovery(api_for(handler)).discover(NOW))
    # m3 is listed but its deployments answer 404 (deleted in between): skipped.
    _, found = asyncio.run(discovery(api_for(list_handler), model_names=("gone",)).discover(NOW))
    assert found == []


def test_a_filtered_metric_leaves_the_request() -> None:
    fake = FakeBaseten()
    deny = MetricFilter((FilterRule(deny=("baseten_inference_.*", "baseten_lat_seconds")),))
    settings = DeploymentSettings(
        effective(
            metrics=("baseten_replicas_active", "baseten_lat_seconds", "baseten_inference_requests_total")
        ),
        interval=30,
        timeout=5,
        scope=Scope("prod", (("team", "ml"),), deny),
    )
    target = DeploymentTarget(api_for(fake, "prod"), "m1", "d1", settings)
    assert target.id == "baseten@prod/m1/d1"
    s = scrape_of(target, NOW)
    # Every family the counter could land in is denied: never asked for, so no second
    # (SERIES) request for counters either. The histogram's average might not be.
    [first] = fake.queries
    assert first["metrics"] == ["baseten_replicas_active", "baseten_lat_seconds"]
    assert s.value("baseten_replicas_active", account="prod", team="ml", **ID) == 2
    assert s.value("baseten_lat_avg_seconds", account="prod", team="ml", **ID) == 0.15
    assert "baseten_lat_seconds" not in s.types and "baseten_inference_requests_total" not in s.types
    # Its answer said where baseten_lat_seconds lands: its average is kept, so it stays asked for.
    scrape_of(target, NOW + 30)
    assert fake.queries[-1]["metrics"] == ["baseten_replicas_active", "baseten_lat_seconds"]


def test_the_default_set_is_named_when_a_filter_removes_part_of_it() -> None:
    fake = FakeBaseten()
    allow = MetricFilter((FilterRule(allow=("baseten_replicas_.*",)),))
    settings = DeploymentSettings(effective(), interval=30, timeout=5, scope=Scope("a", (), allow))
    scrape_of(DeploymentTarget(api_for(fake, "a"), "m1", "d1", settings), NOW)
    assert [q["metrics"] for q in fake.queries] == [["baseten_replicas_active"]]


def test_nothing_is_asked_when_every_metric_is_filtered() -> None:
    fake = FakeBaseten()
    none = MetricFilter((FilterRule(allow=("together_.*",)),))
    settings = DeploymentSettings(effective(), interval=30, timeout=5, scope=Scope("a", (), none))
    out = asyncio.run(DeploymentTarget(api_for(fake, "a"), "m1", "d1", settings).poll(NOW))
    assert fake.queries == [] and out.lines == {}
