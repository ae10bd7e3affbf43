"""Two accounts per vendor, as a real daemon against the simulator serving two organisations:
each account with its own key, the same ids watched by both, labels on every series, filters
that remove families and shrink the Baseten request, and reloads that add or break accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers import (
    Proc,
    Scrape,
    promtool_check_metrics,
    request_log,
    scrape,
    start_daemon,
    start_simulator,
    wait_until,
)

PROD_KEY, STAGING_KEY = "prod-key-7d1e0a", "staging-key-39b2c4"
ENV = {"ACC_PROD_KEY": PROD_KEY, "ACC_STAGING_KEY": STAGING_KEY}
METRICS_ROUTE = "/v1/models/{model_id}/deployments/{deployment_id}/metrics"
DEPLOYMENT = {"model_id": "m2whisper", "deployment_id": "d2prod"}


def config(sim_url: str, *, baseten_staging: bool = True, staging_key_env: str = "ACC_STAGING_KEY") -> str:
    staging = f"""\
    - name: staging
      base_url: {sim_url}
      api_key_env: {staging_key_env}
      labels: {{team: research}}
      metrics: [baseten_replicas_active, baseten_request_size_bytes, baseten_inference_requests_total]
      metric_filter: {{deny: ["baseten_request_size_.*"]}}
      deployments: [{{model_id: m2whisper, deployment_id: d2prod}}]
"""
    return f"""\
global:
  poll_interval: 1s
  timeout: 1s
  start_spread: 200ms
together:
  accounts:
    - name: prod
      base_url: {sim_url}/v1
      api_key_env: ACC_PROD_KEY
      labels: {{team: platform, cost_centre: "42"}}
      queues:
        - model: org/shared
        - model: org/prod-only
          labels: {{team: imaging}}
    - name: staging
      base_url: {sim_url}/v1
      api_key_env: {staging_key_env}
      metric_filter: {{deny: [together_queue_jobs_running]}}
      queues:
        - model: org/shared
baseten:
  accounts:
    - name: prod
      base_url: {sim_url}
      api_key_env: ACC_PROD_KEY
      delay: 1s
      counter_window: 61s
      metrics: [baseten_replicas_active, baseten_request_size_bytes, baseten_inference_requests_total]
      deployments: [{{model_id: m2whisper, deployment_id: d2prod}}]
{staging if baseten_staging else ""}"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Proc]:
    proc = start_simulator(tmp_path, [PROD_KEY], orgs={"staging": STAGING_KEY})
    httpx.post(
        proc.url + "/_sim/queue", json={"model": "org/shared", "kind": "fixed", "waiting": 3}
    ).raise_for_status()
    httpx.post(
        proc.url + "/_sim/queue?org=staging", json={"model": "org/shared", "kind": "fixed", "waiting": 7}
    ).raise_for_status()
    for org in ("default", "staging"):
        httpx.post(proc.url + f"/_sim/baseten?org={org}", json={"min_step": 1, "lag": 0}).raise_for_status()
    yield proc
    proc.stop()


def targets(daemon: Proc, **query: str) -> list[dict[str, object]]:
    resp = httpx.get(daemon.url + "/targets", params={"format": "json", **query}, timeout=5)
    return list(resp.json()["targets"])


def polls(s: Scrape, target: str) -> float:
    """Successful polls of ``target`` so far (its health counter)."""
    found = [
        v
        for lbls, v in s.series("inference_exporter_target_polls_total")
        if lbls["target"] == target and lbls["result"] == "success"
    ]
    assert len(found) == 1, found
    return found[0]


def test_two_accounts_side_by_side(tmp_path: Path, sim: Proc) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config(sim.url))
    daemon = start_daemon(tmp_path, path, env=ENV)
    try:
        wait_until(
            lambda: all(t["health"] == "up" for t in targets(daemon)), 20, "every target up", proc=daemon
        )
        s = scrape(daemon.url)
        # The same model in two accounts: two targets, two series, each from its own key.
        shared = {
            lbls["account"]: v
            for lbls, v in s.series("together_queue_jobs_waiting")
            if lbls["model"] == "org/shared"
        }
        assert shared == {"prod": 3, "staging": 7}
        assert (
            s.value(
                "together_queue_jobs_waiting",
                model="org/shared",
                account="prod",
                team="platform",
                cost_centre="42",
            )
            == 3
        )
        assert (
            s.value(
                "together_queue_jobs_waiting",
                model="org/prod-only",
                account="prod",
                team="imaging",
                cost_centre="42",
            )
            is not None
        )
        # Every series of a target, health included, carries its account; the exporter's
        # own request counters too.
        for name in (
            "together_queue_jobs_waiting",
            "baseten_replicas_active",
            "inference_exporter_target_up",
            "inference_exporter_target_polls_total",
            "inference_exporter_upstream_requests_total",
        ):
            series = s.series(name)
            assert series and all(lbls.get("account") in ("prod", "staging") for lbls, _ in series), name
        assert {lbls["account"] for lbls, _ in s.series("inference_exporter_upstream_requests_total")} == {
            "prod",
            "staging",
        }
        whisper = [lbls for lbls, _ in s.series("baseten_replicas_active")]
        assert sorted(lbls["account"] for lbls in whisper) == ["prod", "staging"]
        assert {"account": "staging", "team": "research", **DEPLOYMENT} in whisper
        # Filters: staging's queue has no running gauge, and staging never asks Baseten for sizes.
        running = [lbls["account"] for lbls, _ in s.series("together_queue_jobs_running")]
        assert sorted(running) == ["prod", "prod"]
        assert {lbls["account"] for lbls, _ in s.series("baseten_request_size_bytes")} == {"prod"}
        asked: dict[str, set[str]] = {"default": set(), "staging": set()}
        for e in request_log(sim, route=METRICS_ROUTE):
            asked[str(e["org"])].update(parse_qs(urlsplit(str(e["path"])).query).get("metrics", []))
        assert "baseten_request_size_bytes" in asked["default"]
        assert asked["staging"] == {"baseten_replicas_active", "baseten_inference_requests_total"}
        # /targets: the account column, the filter by account, and the filtered series.
        rows = {str(t["id"]): t for t in targets(daemon)}
        assert rows["together_queue@staging/org/shared"]["account"] == "staging"
        assert rows["together_queue@staging/org/shared"]["filtered_series"] == 1
        assert rows["together_queue@prod/org/shared"]["filtered_series"] == 0
        assert sorted(str(t["id"]) for t in targets(daemon, account="staging")) == [
            "baseten@staging/m2whisper/d2prod",
            "together_queue@staging/org/shared",
        ]
        page = httpx.get(daemon.url + "/targets", timeout=5).text
        assert 'href="/targets?account=staging"' in page and "1 filtered out" in page
        assert promtool_check_metrics(s.text) == ""
        # Keys appear nowhere.
        assert PROD_KEY not in s.text and STAGING_KEY not in s.text and STAGING_KEY not in daemon.log()
    finally:
        daemon.stop()


def test_reload_adds_an_account_and_keeps_the_others_state(tmp_path: Path, sim: Proc) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config(sim.url, baseten_staging=False))
    daemon = start_daemon(tmp_path, path, env=ENV)
    prod_queue = "together_queue@prod/org/shared"
    counter = {"status": "2xx", "account": "prod", **DEPLOYMENT}
    try:
        wait_until(
            lambda: (scrape(daemon.url).value("baseten_inference_requests_total", **counter) or 0) > 0,
            20,
            "prod's Baseten counter to move",
            proc=daemon,
        )
        before = scrape(daemon.url)
        assert not [
            lbls for lbls, _ in before.series("baseten_replicas_active") if lbls["account"] == "staging"
        ]
        path.write_text(config(sim.url))
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        wait_until(
            lambda: (
                scrape(daemon.url).value(
                    "baseten_replicas_active", account="staging", team="research", **DEPLOYMENT
                )
                is not None
            ),
            20,
            "the new account's deployment",
            proc=daemon,
        )
        # The other accounts' targets were kept, state and all: counters went on from where
        # they were (a rebuilt target would start again from 0).
        assert polls(scrape(daemon.url), prod_queue) >= polls(before, prod_queue) >= 1
        wait_until(
            lambda: polls(scrape(daemon.url), prod_queue) > polls(before, prod_queue),
            10,
            "a poll",
            proc=daemon,
        )
        after = scrape(daemon.url)
        assert (
            (after.value("baseten_inference_requests_total", **counter) or 0)
            >= (before.value("baseten_inference_requests_total", **counter) or 0)
            > 0
        )

        # A reload that breaks an account (its key is unset) keeps the running config.
        path.write_text(config(sim.url, staging_key_env="ACC_UNSET_KEY"))
        resp = httpx.post(daemon.url + "/-/reload", timeout=10)
        assert resp.status_code == 500
        assert (
            "together.accounts[1].api_key_env: environment variable ACC_UNSET_KEY is not set" in daemon.log()
        )
        assert scrape(daemon.url).value("inference_exporter_config_last_reload_successful") == 0
        assert len(targets(daemon)) == len(targets(daemon, account="prod")) + len(
            targets(daemon, account="staging")
        )
        assert any(t["account"] == "staging" for t in targets(daemon))
    finally:
        daemon.stop()
