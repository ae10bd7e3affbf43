"""The daemon as a real process against the simulated Baseten API."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from exporter.simulator.baseten_data import STATUS_SHARE
from tests.conftest import SIM_KEY
from tests.helpers import (
    Proc,
    add_fault,
    promtool_check_metrics,
    scrape,
    start_daemon,
    wait_for_reason,
    wait_until,
)

MIB = 1024 * 1024
REQ = "baseten_inference_requests_total"
METRICS = [
    "baseten_replicas_active",
    "baseten_inference_requests_total",
    "baseten_end_to_end_response_time_seconds",
    "baseten_gpu_memory_used",
    "baseten_gpu_utilization",
    "baseten_llm_output_tokens_total",
]


def write_config(tmp_path: Path, sim_url: str, stale_grace: str = "5m") -> Path:
    text = f"""\
global:
  poll_interval: 1s
  timeout: 1s
  start_spread: 500ms
  stale_grace: {stale_grace}
baseten:
  base_url: {sim_url}
  api_key_env: TEST_BASETEN_KEY
  delay: 2s
  counter_window: 61s
  metrics: [{", ".join(METRICS)}]
  deployments:
    - model_id: m2whisper
      deployment_id: d2prod
    - model_id: m2whisper
      deployment_id: d2prod-missing
    - model_id: m1llama
      deployment_id: d1prod
      metrics: [baseten_bogus]
  discovery:
    - model_names: [llama-chat]
      refresh_interval: 1s
      mode: SERIES
      window: 61s
"""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def control(sim: Proc, **doc: object) -> None:
    httpx.post(sim.url + "/_sim/baseten", json=doc, timeout=5).raise_for_status()


# Requests per second scripted for whisper, and how many of them each status class gets.
RPS = 1000
OK, ERRORS = (round(RPS * STATUS_SHARE[c]) for c in ("2xx", "5xx"))


def test_deployments_end_to_end(tmp_path: Path, simulator: Proc) -> None:
    control(simulator, min_step=1, lag=1)
    control(simulator, model_id="m2whisper", deployment_id="d2prod", rps=RPS)
    started = time.time()
    daemon = start_daemon(
        tmp_path, write_config(tmp_path, simulator.url), env={"TEST_BASETEN_KEY": SIM_KEY}, wait_ready=False
    )
    whisper = {"model_id": "m2whisper", "deployment_id": "d2prod"}
    try:
        wait_until(
            lambda: (scrape(daemon.url).value(REQ, **whisper, status="2xx") or 0) > 0,
            timeout=20,
            what="whisper's request counter to move",
        )
        s = scrape(daemon.url)
        elapsed = time.time() - started
        total = s.value(REQ, **whisper, status="2xx")
        assert total is not None
        # OK requests per second on whole-second steps: a whole number of seconds, each
        # counted once. The first window read (the baseline) ends up to a minute before
        # now - delay (the step grid is not known yet), so at most that much more.
        assert total % OK == 0
        assert total / OK <= elapsed + 60 + 2
        assert s.value(REQ, **whisper, status="5xx") == total / OK * ERRORS
        # Polled every second over a 2-minute window, yet the counter grows at the
        # vendor's rate: each step added once, not once per overlapping window.
        t0, v0 = time.time(), total
        time.sleep(6)
        s = scrape(daemon.url)
        grown = ((s.value(REQ, **whisper, status="2xx") or 0) - v0) / OK
        assert time.time() - t0 - 5 <= grown <= time.time() - t0 + 5
        assert s.types["baseten_inference_requests"] == "counter"

        # Gauges, MiB → bytes, a summary with quantiles, and the avg series.
        assert s.value("baseten_replicas_active", **whisper) == 1
        mem = s.value("baseten_gpu_memory_used_bytes", **whisper)
        assert mem is not None and mem > 50_000 * MIB and mem % MIB == 0
        assert s.types["baseten_end_to_end_response_time_seconds"] == "summary"
        assert (s.value("baseten_end_to_end_response_time_seconds", **whisper, quantile="0.99") or 0) > 0
        assert (s.value("baseten_end_to_end_response_time_avg_seconds", **whisper) or 0) > 0
        # Token counters do not apply to a speech model: the vendor omits them.
        assert not [
            lb for lb, _ in s.series("baseten_llm_output_tokens_total") if lb["model_id"] == "m2whisper"
        ]

        # Discovery: the llama deployments that are not inactive, with their info.
        wait_until(
            lambda: len(scrape(daemon.url).series("baseten_deployment_info")) >= 3,
            timeout=20,
            what="discovered deployments",
        )
        s = scrape(daemon.url)
        info = {lb["deployment_id"]: lb for lb, _ in s.series("baseten_deployment_info")}
        # d1prod is configured explicitly (and failing, so no info yet); d1old is inactive.
        assert set(info) == {"d2prod", "d1stage", "d1dev"}
        assert info["d1stage"]["environment"] == "staging" and "status" not in info["d1dev"]
        current = {
            lb["deployment_id"]: lb["status"] for lb, v in s.series("baseten_deployment_status") if v == 1
        }
        assert current == {"d2prod": "ACTIVE", "d1stage": "ACTIVE", "d1dev": "SCALED_TO_ZERO"}
        assert info["d2prod"]["model_name"] == "whisper-large"
        # d1stage sends GPU utilisation as 0-100; it is exported as a ratio.
        util = [v for lb, v in s.series("baseten_gpu_utilization")]
        assert util and all(0 <= v <= 1 for v in util)
        # The configured d1prod asks for an unknown metric: it is down with a reason,
        # and the discovered copy of it does not take its place.
        bogus = {"target": "baseten/m1llama/d1prod", "source": "baseten"}
        assert s.value("inference_exporter_target_up", **bogus) == 0
        assert s.value("inference_exporter_target_error_info", **bogus, reason="client_error") == 1
        missing = {"target": "baseten/m2whisper/d2prod-missing", "source": "baseten"}
        assert s.value("inference_exporter_target_error_info", **missing, reason="not_found") == 1
        assert (
            s.value("inference_exporter_target_up", target="baseten_discovery/0", source="baseten_discovery")
            == 1
        )
        assert promtool_check_metrics(s.text) == ""
        series_lines = [ln.rsplit(" ", 1)[0] for ln in s.text.splitlines() if ln and not ln.startswith("#")]
        assert len(series_lines) == len(set(series_lines))  # no duplicate series anywhere

        # A status change reaches the running target (kept, with its counters) via
        # the discovery's next refresh.
        stage = {"model_id": "m1llama", "deployment_id": "d1stage"}
        control(simulator, **stage, status="UPDATING")
        wait_until(
            lambda: (
                [
                    lb["status"]
                    for lb, v in scrape(daemon.url).series("baseten_deployment_status")
                    if lb["deployment_id"] == "d1stage" and v == 1
                ]
                == ["UPDATING"]
            ),
            timeout=20,
            what="d1stage's new status",
        )
        # A deployment that goes inactive is dropped at the next refresh.
        control(simulator, model_id="m1llama", deployment_id="d1stage", status="INACTIVE")
        wait_until(
            lambda: (
                scrape(daemon.url).value(
                    "baseten_replicas_active", model_id="m1llama", deployment_id="d1stage"
                )
                is None
            ),
            timeout=20,
            what="d1stage to be dropped",
        )

        # A reload that leaves a deployment's settings alone keeps its counters.
        before = scrape(daemon.url).value(REQ, **whisper, status="2xx") or 0
        write_config(tmp_path, simulator.url, stale_grace="4m")
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        wait_until(
            lambda: (scrape(daemon.url).value(REQ, **whisper, status="2xx") or 0) > before,
            timeout=20,
            what="the counter to keep growing after the reload",
        )
    finally:
        assert daemon.stop() == 0
    assert SIM_KEY not in daemon.log()


LIMIT_CONFIG = """\
global:
  poll_interval: 1s
  timeout: 1s
  start_spread: 300ms
baseten:
  base_url: {url}
  api_key_env: TEST_BASETEN_KEY
  max_series_per_target: 1000
  deployments:
    - model_id: m2whisper
      deployment_id: d2prod
    - model_id: m1llama
      deployment_id: d1stage
"""


def test_one_deployment_past_the_series_limit_fails_alone(tmp_path: Path, simulator: Proc) -> None:
    """An answer of more series than the account allows (the unit tests show 100,015
    against the default) fails its deployment only: the rest of the exposition stays."""
    sets = [{"replica": f"r{j}"} for j in range(300)]
    doc = {
        "mode": "CURRENT",
        "start_epoch_millis": 0,
        "end_epoch_millis": 0,
        "step_seconds": None,
        "metric_descriptors": [
            {"name": f"baseten_m{i}", "kind": "GAUGE", "unit_hint": "COUNT", "label_sets": sets}
            for i in range(5)
        ],
        "metric_values": [{"start_epoch_millis": 0, "values": [[1.0] * len(sets)] * 5}],
    }
    add_fault(simulator, path="/v1/models/m2whisper/deployments/d2prod/metrics", kind="json", json=doc)
    config = tmp_path / "config.yaml"
    config.write_text(LIMIT_CONFIG.format(url=simulator.url))
    daemon = start_daemon(tmp_path, config, env={"TEST_BASETEN_KEY": SIM_KEY}, wait_ready=False)
    try:
        wait_for_reason(daemon.url, "baseten/m2whisper/d2prod", "baseten", "too_many_series")
        wait_until(
            lambda: (
                scrape(daemon.url).value(
                    "baseten_replicas_active", model_id="m1llama", deployment_id="d1stage"
                )
                is not None
            ),
            timeout=20,
            what="the sibling deployment's series",
        )
        s = scrape(daemon.url)
        assert (
            s.value("inference_exporter_target_up", target="baseten/m1llama/d1stage", source="baseten") == 1
        )
        hits = {"source": "baseten", "limit": "max_series_per_target", "account": "default"}
        assert (s.value("inference_exporter_limit_hits_total", **hits) or 0) >= 1
        assert not s.series("baseten_m0")
        assert len(s.text) < 200_000
        assert promtool_check_metrics(s.text) == ""
    finally:
        assert daemon.stop() == 0
