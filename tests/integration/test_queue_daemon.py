"""The daemon as a real process against the simulator: Together queue metrics end to end."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx

from tests.conftest import SIM_KEY
from tests.helpers import Proc, parse, promtool_check_metrics, scrape, start_daemon, wait_until

MODELS = ["acme/alpha", "acme/beta", "acme/gamma"]


def write_config(tmp_path: Path, sim_url: str, models: list[str], interval: str = "1s") -> Path:
    lines = [
        "global:",
        f"  poll_interval: {interval}",
        "  timeout: 1s",
        "  start_spread: 500ms",
        "together:",
        f"  base_url: {sim_url}/v1",
        "  api_key_env: TEST_TOGETHER_KEY",
        "  queues:",
        *[f"    - model: {m}" for m in models],
    ]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def set_queue(sim: Proc, **doc: object) -> None:
    httpx.post(sim.url + "/_sim/queue", json=doc, timeout=5).raise_for_status()


def test_scrape_reports_queue_depths_and_health(tmp_path: Path, simulator: Proc) -> None:
    set_queue(simulator, model="acme/alpha", kind="fixed", waiting=42, running=7)
    set_queue(simulator, model="acme/beta", kind="error", status=500)
    daemon = start_daemon(
        tmp_path, write_config(tmp_path, simulator.url, MODELS), env={"TEST_TOGETHER_KEY": SIM_KEY}
    )
    try:
        wait_until(
            lambda: scrape(daemon.url).value("together_queue_jobs_waiting", model="acme/alpha") == 42,
            timeout=10,
            what="alpha's depth",
        )
        s = scrape(daemon.url)
        assert s.value("together_queue_jobs_running", model="acme/alpha") == 7
        assert s.types["together_queue_jobs_waiting"] == "gauge"
        # gamma follows the simulator's moving default: some non-negative count.
        gamma = s.value("together_queue_jobs_waiting", model="acme/gamma")
        assert gamma is not None and gamma >= 0
        # beta's upstream fails: it is down with a reason, and exports no depth.
        assert s.value("together_queue_jobs_waiting", model="acme/beta") is None
        beta = {"target": "together_queue/acme/beta", "source": "together_queue"}
        assert s.value("inference_exporter_target_up", **beta) == 0
        assert s.value("inference_exporter_target_error_info", **beta, reason="server_error") == 1
        assert (s.value("inference_exporter_target_polls_total", **beta, result="server_error") or 0) >= 1
        alpha = {"target": "together_queue/acme/alpha", "source": "together_queue"}
        assert s.value("inference_exporter_target_up", **alpha) == 1
        assert (s.value("inference_exporter_target_last_success_timestamp_seconds", **alpha) or 0) > 1.6e9
        assert s.value("inference_exporter_target_series", **alpha) == 2
        assert (
            s.value(
                "inference_exporter_upstream_requests_total",
                source="together_queue",
                endpoint="/queue/metrics",
                code="500",
            )
            or 0
        ) >= 1, s.text
        assert s.value("inference_exporter_config_last_reload_successful") == 1, s.text
        # total_jobs is deliberately not exported.
        assert not any("total_jobs" in name for name in s.types)
        # One HELP/TYPE per family even with many targets.
        assert s.text.count("# TYPE together_queue_jobs_waiting gauge") == 1

        # The depth follows the simulator: a new fixed depth shows up after a poll.
        set_queue(simulator, model="acme/alpha", kind="fixed", waiting=5, running=1)
        wait_until(
            lambda: scrape(daemon.url).value("together_queue_jobs_waiting", model="acme/alpha") == 5,
            timeout=10,
            what="alpha's new depth",
        )
        # beta recovers on its own once the fault clears.
        set_queue(simulator, model="acme/beta", kind="clear")
        wait_until(
            lambda: scrape(daemon.url).value("inference_exporter_target_up", **beta) == 1,
            timeout=10,
            what="beta up again",
        )
    finally:
        assert daemon.stop() == 0
    assert SIM_KEY not in daemon.log()


def test_exposition_passes_promtool_and_gzip_matches(tmp_path: Path, simulator: Proc) -> None:
    daemon = start_daemon(
        tmp_path, write_config(tmp_path, simulator.url, MODELS), env={"TEST_TOGETHER_KEY": SIM_KEY}
    )
    try:
        wait_until(
            lambda: scrape(daemon.url).value("together_queue_jobs_waiting", model="acme/gamma") is not None,
            timeout=10,
            what="first polls",
        )
        plain = httpx.get(daemon.url + "/metrics", headers={"Accept-Encoding": "identity"}, timeout=5)
        assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "content-encoding" not in plain.headers
        assert promtool_check_metrics(plain.text) == ""
        raw = httpx.Client(headers={"Accept-Encoding": "gzip"}).get(daemon.url + "/metrics")
        assert raw.headers["content-encoding"] == "gzip"
        body = gzip.decompress(raw.read()) if raw.content[:2] == b"\x1f\x8b" else raw.content
        parsed = parse(body.decode())
        assert parsed.types.keys() == parse(plain.text).types.keys()
    finally:
        daemon.stop()


def test_not_ready_until_every_target_polled_and_up_zero_before(tmp_path: Path, simulator: Proc) -> None:
    config = write_config(tmp_path, simulator.url, MODELS, interval="1h")
    text = config.read_text().replace("start_spread: 500ms", "start_spread: 3s")
    config.write_text(text)
    daemon = start_daemon(tmp_path, config, env={"TEST_TOGETHER_KEY": SIM_KEY}, wait_ready=False)
    try:
        first = scrape(daemon.url)
        ready = httpx.get(daemon.url + "/-/ready", timeout=5).status_code
        polled = [v for _, v in first.series("inference_exporter_target_up")]
        # Every target has its self-metrics from the first scrape.
        assert len(polled) == 3
        if ready == 503:
            assert 0 in polled or sum(polled) < 3
        wait_until(lambda: httpx.get(daemon.url + "/-/ready").status_code == 200, timeout=10, what="ready")
        landing = httpx.get(daemon.url + "/", timeout=5)
        assert landing.status_code == 200 and 'href="/metrics"' in landing.text
        assert httpx.get(daemon.url + "/-/healthy", timeout=5).status_code == 200
    finally:
        daemon.stop()
