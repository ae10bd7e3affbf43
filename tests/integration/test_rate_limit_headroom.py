"""The vendor's rate-limit headers on /metrics: the latest reading per account and endpoint,
from a real daemon polling the simulator's two organisations; an account removed by a reload
takes its readings with it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import promtool_check_metrics, scrape, start_daemon, start_simulator, wait_until

PROD_KEY, STAGING_KEY = "prod-key-51c0de", "staging-key-a77e12"
REMAINING = "inference_exporter_upstream_ratelimit_remaining"


def config(sim_url: str, *, staging: bool) -> str:
    text = f"""\
global:
  poll_interval: 500ms
  timeout: 1s
  start_spread: 100ms
together:
  accounts:
    - name: prod
      base_url: {sim_url}/v1
      api_key_env: PROD_KEY
      queues: [{{model: org/a}}, {{model: org/b}}]
"""
    if staging:
        text += f"""\
    - name: staging
      base_url: {sim_url}/v1
      api_key_env: STAGING_KEY
      queues: [{{model: org/a}}]
"""
    return text


def remaining(url: str) -> dict[str, float]:
    return {lbls["account"]: v for lbls, v in scrape(url).series(REMAINING)}


def test_headroom_per_account_and_endpoint(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path, [PROD_KEY], orgs={"staging": STAGING_KEY})
    path = tmp_path / "config.yaml"
    path.write_text(config(sim.url, staging=True))
    daemon = start_daemon(tmp_path, path, env={"PROD_KEY": PROD_KEY, "STAGING_KEY": STAGING_KEY})
    try:
        wait_until(lambda: set(remaining(daemon.url)) == {"prod", "staging"}, 15, "both readings")
        text = httpx.get(daemon.url + "/metrics", timeout=5).text
        assert promtool_check_metrics(text) == ""
        s = scrape(daemon.url)
        labels = {"source": "together_queue", "endpoint": "/queue/metrics"}
        assert s.value("inference_exporter_upstream_ratelimit_limit", account="prod", **labels) == 600
        reset = s.value(
            "inference_exporter_upstream_ratelimit_reset_timestamp_seconds", account="prod", **labels
        )
        assert reset is not None
        # Each organisation's window counts its own requests: prod polls two queues, staging one.
        prod_left, staging_left = (
            s.value(REMAINING, account="prod", **labels),
            s.value(REMAINING, account="staging", **labels),
        )
        assert prod_left is not None and staging_left is not None
        assert 0 <= prod_left < 600 and 0 <= staging_left < 600
        # The simulator's window is a minute: the readings fall as polls go on (unless it just turned).
        wait_until(lambda: remaining(daemon.url)["prod"] != prod_left, 10, "a newer reading")

        path.write_text(config(sim.url, staging=False))
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        wait_until(lambda: set(remaining(daemon.url)) == {"prod"}, 10, "staging's readings gone")
    finally:
        daemon.stop()
        sim.stop()
