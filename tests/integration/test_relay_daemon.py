"""The relays as a real daemon runs them against the simulator: the vendors' own endpoints
relayed exactly, with the targets' labels and the account's filter; the collision rule
between Baseten's two sources; a reload that changes only a relay."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import (
    Proc,
    Scrape,
    promtool_check_metrics,
    request_log,
    run_cli,
    scrape,
    start_daemon,
    wait_until,
    write_yaml,
)
from tests.integration.relay_sim import (
    DEDICATED,
    ENV,
    ORG_TARGET,
    Series,
    direct,
    relay_value,
    relayed,
    set_limit,
    simulator,
    targets,
    vendor_series,
)

TOGETHER_TARGET = "together_relay@prod/dedicated"
# The simulator's bodies change every 30 s (its vendors' refresh).
REFRESH = 30.0


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Proc]:
    yield from simulator(tmp_path)


def relays_config(sim: str) -> str:
    return f"""\
global: {{start_spread: 100ms}}
together:
  name: prod
  base_url: {sim}/v1
  api_key_env: RELAY_KEY
  prometheus_endpoints:
    - name: dedicated
      url: {sim}{DEDICATED}
      interval: 10s
      labels: {{deployment: shared-pool}}
baseten:
  name: prod
  base_url: {sim}
  api_key_env: RELAY_KEY
  labels: {{team: platform}}
  metric_filter: {{deny: ["relay_baseten_gpu_.*"]}}
  organisation_metrics:
    url: {sim}/metrics
    interval: 10s
"""


def all_up(daemon: Proc, ids: set[str]) -> bool:
    rows = targets(daemon)
    return ids <= rows.keys() and all(rows[i]["health"] == "up" for i in ids)


def expected_baseten(body: str) -> Series:
    return vendor_series(
        body,
        lambda name: "relay_" + name,
        lambda labels: {**labels, "account": "prod", "team": "platform"},
    )


def expected_together(body: str) -> Series:
    def relabel(labels: dict[str, str]) -> dict[str, str]:
        # The target's `deployment` wins; the vendor's is kept as exported_deployment.
        out = {("exported_" + k if k == "deployment" else k): v for k, v in labels.items()}
        return {**out, "deployment": "shared-pool", "account": "prod"}

    return vendor_series(body, lambda name: name, relabel)


def same_refresh(s: Scrape, target: str) -> bool:
    """Whether the simulator still serves what ``target`` last fetched (its values move
    every 30 s), with a second to spare before the next refresh."""
    fetched = relay_value(s, "body_fetch_timestamp_seconds", target)
    now = time.time()
    return (
        fetched is not None
        and math.floor(fetched / REFRESH) == math.floor((now + 1) / REFRESH)
        and fetched % REFRESH < REFRESH - 1
    )


def test_vendor_endpoints_are_relayed_exactly_with_labels_and_filter(tmp_path: Path, sim: Proc) -> None:
    # Room for this test's own reads of the endpoints besides the relays'.
    set_limit(sim, "baseten/org-metrics", 1000)
    set_limit(sim, "dedicated-endpoints", 1000)
    daemon = start_daemon(tmp_path, write_yaml(tmp_path, relays_config(sim.url)), env=ENV)
    try:
        wait_until(lambda: all_up(daemon, {ORG_TARGET, TOGETHER_TARGET}), 20, "both relays up", proc=daemon)
        compared = 0
        deadline = time.monotonic() + 45
        while compared < 2 and time.monotonic() < deadline:
            s = scrape(daemon.url)
            if not (same_refresh(s, ORG_TARGET) and same_refresh(s, TOGETHER_TARGET)):
                time.sleep(1)
                continue
            org_body = direct(sim, "/metrics", "Api-Key")
            together_body = direct(sim, DEDICATED, "Bearer")
            # Every sample, exactly: the vendor's value, its labels, the account's and the
            # target's after them; the filter's families left out.
            want = expected_baseten(org_body)
            gpu = {k: v for k, v in want.items() if k[0].startswith("relay_baseten_gpu_")}
            assert gpu
            assert relayed(s, "relay_baseten_") == {k: v for k, v in want.items() if k not in gpu}
            assert relayed(s, "together_endpoint_") == expected_together(together_body)
            assert len(want) > 100
            compared += 1
            time.sleep(1)
        assert compared == 2, "no two scrapes within one refresh of the simulator"

        rows = targets(daemon)
        assert rows[ORG_TARGET]["source"] == "baseten_relay"
        assert rows[ORG_TARGET]["filtered_series"] == len(gpu)
        assert rows[TOGETHER_TARGET]["filtered_series"] == 0
        # The relays' self-metrics, and the requests counted under their sources.
        assert relay_value(s, "stale_after_seconds", ORG_TARGET) == 300
        assert relay_value(s, "held_polls_total", ORG_TARGET) == 0
        for reason in ("duplicate", "reserved_namespace", "too_long"):
            assert relay_value(s, "samples_left_out_total", TOGETHER_TARGET, reason=reason) == 0
        assert relay_value(s, "timestamps_dropped_total", ORG_TARGET) == 0
        requests = s.value(
            "inference_exporter_upstream_requests_total",
            source="baseten_relay",
            endpoint="/metrics",
            code="200",
            account="prod",
        )
        assert requests is not None and requests >= 1
        assert s.types["inference_exporter_relay_body_fetch_timestamp_seconds"] == "gauge"
        assert promtool_check_metrics(s.text) == ""
    finally:
        daemon.stop()


COLLIDING = """\
baseten:
  api_key_env: RELAY_KEY
  base_url: {sim}
  deployments: [{{model_id: m1llama, deployment_id: d1prod}}]
  organisation_metrics:
    url: {sim}/metrics
    metric_prefix: ""
"""


def test_the_organisation_endpoint_under_baseten_names_with_management_targets_is_refused(
    tmp_path: Path,
) -> None:
    path = write_yaml(tmp_path, COLLIDING.format(sim="http://127.0.0.1:9"))
    out = run_cli("check-config", "--no-secrets", str(path))
    assert out.returncode != 0
    [problem] = [line for line in (out.stdout + out.stderr).splitlines() if "metric_prefix" in line]
    assert problem.startswith(f"{path}:7: baseten.organisation_metrics.metric_prefix: metric_prefix ''")
    for part in (
        "organisation_metrics",
        "management-API source (baseten.deployments)",
        "baseten_end_to_end_response_time_seconds, baseten_inference_requests_total, baseten_replicas_active",
        "Keep the default metric_prefix 'relay_'",
    ):
        assert part in problem, part


BOTH = """\
global: {{start_spread: 100ms, poll_interval: 1s, timeout: 1s}}
baseten:
  api_key_env: RELAY_KEY
  base_url: {sim}
  name: prod
  delay: 1s
  counter_window: 61s
  deployments: [{{model_id: m1llama, deployment_id: d1prod}}]
  organisation_metrics:
    url: {sim}/metrics
  prometheus_endpoints:
    # The same endpoint under the vendor's own names: every family is in the
    # management-API source's namespace, so none is relayed.
    - name: unprefixed
      url: {sim}/metrics
"""


def test_both_baseten_sources_on_together_with_the_prefix(tmp_path: Path, sim: Proc) -> None:
    httpx.post(sim.url + "/_sim/baseten", json={"min_step": 1, "lag": 0}, timeout=5).raise_for_status()
    daemon = start_daemon(tmp_path, write_yaml(tmp_path, BOTH.format(sim=sim.url)), env=ENV)
    unprefixed = "baseten_relay@prod/unprefixed"
    deployment = "baseten@prod/m1llama/d1prod"
    try:
        wait_until(lambda: all_up(daemon, {ORG_TARGET, unprefixed, deployment}), 20, "all up", proc=daemon)
        wait_until(
            lambda: scrape(daemon.url).series("baseten_inference_requests_total") != [],
            20,
            "the management API's counter",
            proc=daemon,
        )
        s = scrape(daemon.url)
        types = [line.split(" ")[2] for line in s.text.splitlines() if line.startswith("# TYPE ")]
        helps = [line.split(" ")[2] for line in s.text.splitlines() if line.startswith("# HELP ")]
        assert len(types) == len(set(types)) and len(helps) == len(set(helps))
        assert promtool_check_metrics(s.text) == ""
        # One name each, two meanings kept apart: a summary per deployment, a real histogram.
        assert s.types["baseten_end_to_end_response_time_seconds"] == "summary"
        assert s.types["relay_baseten_end_to_end_response_time_seconds"] == "histogram"
        native = {lbls["status"] for lbls, _ in s.series("baseten_inference_requests_total")}
        relayed_codes = {
            lbls["status_code"] for lbls, _ in s.series("relay_baseten_inference_requests_total")
        }
        assert native and relayed_codes == {"200", "429", "500"}
        # The unprefixed relay fetched the body and left every family out, counted.
        body = direct(sim, "/metrics", "Api-Key")
        total = sum(len(f.samples) for f in text_string_to_metric_families(body))
        left_out = relay_value(s, "samples_left_out_total", unprefixed, reason="reserved_namespace")
        assert left_out is not None and left_out >= total > 100
        assert targets(daemon)[unprefixed]["series"] == 0
        assert "relayed families left out" in daemon.log()
    finally:
        daemon.stop()


RELOADED = """\
global: {{start_spread: 100ms, poll_interval: 1s, timeout: 1s}}
together:
  name: prod
  base_url: {sim}/v1
  api_key_env: RELAY_KEY
  queues: [{{model: org/shared}}]
baseten:
  name: prod
  base_url: {sim}
  api_key_env: RELAY_KEY
  delay: 1s
  counter_window: 61s
  deployments: [{{model_id: m1llama, deployment_id: d1prod}}]
  organisation_metrics:
    url: {sim}/metrics
    {relay}
"""


def polls(s: Scrape, target: str) -> float:
    found = [
        v
        for lbls, v in s.series("inference_exporter_target_polls_total")
        if lbls["target"] == target and lbls["result"] == "success"
    ]
    return found[0] if found else 0.0


def test_a_reload_that_changes_only_the_relay_keeps_the_other_targets_state(
    tmp_path: Path, sim: Proc
) -> None:
    httpx.post(sim.url + "/_sim/baseten", json={"min_step": 1, "lag": 0}, timeout=5).raise_for_status()
    path = write_yaml(tmp_path, RELOADED.format(sim=sim.url, relay="labels: {tier: silver}"))
    daemon = start_daemon(tmp_path, path, env=ENV)
    queue, deployment = "together_queue@prod/org/shared", "baseten@prod/m1llama/d1prod"
    counter = {"model_id": "m1llama", "deployment_id": "d1prod", "status": "2xx", "account": "prod"}
    try:
        wait_until(
            lambda: (scrape(daemon.url).value("baseten_inference_requests_total", **counter) or 0) > 0,
            20,
            "the deployment's counter to move",
            proc=daemon,
        )
        wait_until(lambda: polls(scrape(daemon.url), queue) >= 3, 10, "queue polls", proc=daemon)
        before = scrape(daemon.url)
        relay_requests = len(request_log(sim, route="/metrics"))
        path.write_text(RELOADED.format(sim=sim.url, relay="labels: {tier: gold}\n    stale_after: 4m"))
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        after = scrape(daemon.url)
        # The relay's series carry the new label at once, from the body it holds: no fetch.
        tiers = {lbls["tier"] for lbls, _ in after.series("relay_baseten_inference_requests_total")}
        assert tiers == {"gold"}
        assert relay_value(after, "stale_after_seconds", ORG_TARGET) == 240
        assert len(request_log(sim, route="/metrics")) == relay_requests
        # Every target was kept, state and all: counters went on from where they were.
        for target in (queue, deployment, ORG_TARGET):
            assert polls(after, target) >= polls(before, target) >= 1, target
        wait_until(lambda: polls(scrape(daemon.url), queue) > polls(after, queue), 10, "a poll", proc=daemon)
        assert (
            (scrape(daemon.url).value("baseten_inference_requests_total", **counter) or 0)
            >= (before.value("baseten_inference_requests_total", **counter) or 0)
            > 0
        )
        assert sorted(targets(daemon)) == sorted([queue, deployment, ORG_TARGET])
    finally:
        daemon.stop()
