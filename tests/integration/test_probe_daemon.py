"""The synthetic queue probe through the real daemon against the real simulator.

Each probed model is scripted in the simulator (workers slow, stopped, failing,
faults on one endpoint), and the scrape must show what a caller would have seen,
with a reason for every failure — and the simulator must never hold a probe job
the exporter left behind, including after SIGTERM and after a reload.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SIM_KEY
from tests.helpers import REPO, Proc, free_port, promtool_check_metrics, scrape, start_daemon, wait_until

ENV = {"TEST_TOGETHER_KEY": SIM_KEY}


def script(sim: Proc, model: str, **doc: Any) -> None:
    httpx.post(sim.url + "/_sim/jobs", json={"model": model, **doc}, timeout=5).raise_for_status()


def jobs(sim: Proc, model: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    params = {k: v for k, v in (("model", model), ("status", status)) if v}
    resp = httpx.get(sim.url + "/_sim/jobs", params=params, timeout=5)
    resp.raise_for_status()
    found: list[dict[str, Any]] = resp.json()["jobs"]
    return found


def sim_requests(sim: Proc, key: str) -> int:
    return int(httpx.get(sim.url + "/_sim/requests", timeout=5).json().get(key, 0))


def write_config(
    tmp_path: Path,
    sim_url: str,
    probes: list[dict[str, str]],
    queues: tuple[str, ...] = (),
    name: str = "config.yaml",
) -> Path:
    lines = [
        "global:",
        "  poll_interval: 1s",
        "  timeout: 1s",
        "  start_spread: 500ms",
        "together:",
        f"  base_url: {sim_url}/v1",
        "  api_key_env: TEST_TOGETHER_KEY",
    ]
    if queues:
        lines += ["  queues:", *[f"    - model: {q}" for q in queues]]
    if probes:
        lines.append("  probes:")
        for p in probes:
            lines.append(f"    - model: {p['model']}")
            lines += [f"      {k}: {v}" for k, v in p.items() if k != "model"]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def probe(model: str, **extra: str) -> dict[str, str]:
    return {
        "model": model,
        "payload": "{prompt: ping}",
        "interval": "3s",
        "timeout": "1500ms",
        "status_poll_interval": "100ms",
        **extra,
    }


# model → (simulator script, the result its probes must report)
SCENARIOS: dict[str, tuple[dict[str, Any], str]] = {
    "p/ok": ({"claim_delay": 0.3, "run_seconds": 0.4}, "success"),
    "p/retry": ({"claim_delay": 0.0, "stalls": 1, "claim_timeout": 0.3, "run_seconds": 0.1}, "success"),
    "p/stopped": ({"mode": "stopped"}, "timeout"),
    "p/failing": ({"claim_delay": 0.0, "run_seconds": 0.1, "mode": "fail"}, "job_failed"),
    "p/limited": ({"submit_status": 429}, "submit_rate_limited"),
    "p/down": ({"submit_status": 503}, "submit_server_error"),
    "p/denied": ({"submit_status": 401}, "submit_unauthorized"),
    "p/bad": ({"submit_status": 400}, "submit_client_error"),
    "p/silent": ({"status_status": 500, "mode": "stopped"}, "status_server_error"),
    "p/weird": ({"status_override": "paused", "run_seconds": 0.1}, "unknown_status"),
    "p/partial": ({"omit": ["created_at"], "claim_delay": 0.0, "run_seconds": 0.1}, "missing_timestamps"),
}


def test_probe_outcomes_for_every_scenario(tmp_path: Path, simulator: Proc) -> None:
    for model, (doc, _) in SCENARIOS.items():
        script(simulator, model, **doc)
    probes = [probe(m) for m in SCENARIOS]
    probes[0] = probe("p/ok", priority="7", info="{team: sre}")
    daemon = start_daemon(tmp_path, write_config(tmp_path, simulator.url, probes), env=ENV)
    try:

        def all_reported() -> bool:
            s = scrape(daemon.url)
            return all(
                (s.value("together_queue_probes_total", model=m, result=r) or 0) >= 1
                for m, (_, r) in SCENARIOS.items()
            )

        wait_until(all_reported, timeout=30, what="every scenario's probe result", proc=daemon)
        # At most one probe job per model exists that has not ended, whenever we look.
        for model in SCENARIOS:
            unfinished = [j for j in jobs(simulator, model) if j["status"] in ("pending", "running")]
            assert len(unfinished) <= 1, (model, unfinished)

        s = scrape(daemon.url)
        ok = {"model": "p/ok"}
        assert s.value("together_queue_probe_success", **ok) == 1
        # The phases come from the simulator's timestamps (millisecond resolution).
        assert (
            abs((s.value("together_queue_probe_duration_seconds", **ok, phase="queue_wait") or 0) - 0.3)
            < 0.01
        )
        assert abs((s.value("together_queue_probe_duration_seconds", **ok, phase="run") or 0) - 0.4) < 0.01
        assert (
            abs((s.value("together_queue_probe_duration_seconds", **ok, phase="end_to_end") or 0) - 0.7)
            < 0.01
        )
        assert s.value("together_queue_probe_retries", **ok) == 0
        assert (s.value("together_queue_probe_jobs_total", **ok, status="done") or 0) >= 1
        assert (s.value("together_queue_probe_last_completed_timestamp_seconds", **ok) or 0) > 1.6e9
        # The configured payload, priority and info reached the queue.
        submitted = jobs(simulator, "p/ok")[0]
        assert submitted["priority"] == 7 and submitted["info"] == {"team": "sre"}

        retry = {"model": "p/retry"}
        assert s.value("together_queue_probe_success", **retry) == 1
        assert s.value("together_queue_probe_retries", **retry) == 1
        # The queue wait spans the first claim, its timeout and the second claim.
        assert (s.value("together_queue_probe_duration_seconds", **retry, phase="queue_wait") or 0) >= 0.3

        stopped = {"model": "p/stopped"}
        assert s.value("together_queue_probe_success", **stopped) == 0
        assert (s.value("together_queue_probe_jobs_total", **stopped, status="canceled") or 0) >= 1
        assert s.value("together_queue_probe_duration_seconds", **stopped, phase="end_to_end") is None

        failing = {"model": "p/failing"}
        assert s.value("together_queue_probe_success", **failing) == 0
        assert (s.value("together_queue_probe_jobs_total", **failing, status="failed") or 0) >= 1
        assert s.value("together_queue_probe_retries", **failing) == 0

        for model, (_, result) in SCENARIOS.items():
            if result != "success":
                assert s.value("together_queue_probe_success", model=model) == 0, model
            # A failed probe is the probed queue's failure, not the exporter's: the target is up.
            target = {"target": f"together_queue_probe/{model}", "source": "together_queue_probe"}
            assert s.value("inference_exporter_target_up", **target) == 1, model
        # Submit faults never created a job; jobs that never showed done were canceled or ended.
        assert jobs(simulator, "p/limited") == []
        assert s.types["together_queue_probe_jobs"] == "counter"
        assert s.types["together_queue_probe_success"] == "gauge"
        assert (
            s.value(
                "inference_exporter_upstream_requests_total",
                source="together_queue_probe",
                endpoint="/queue/cancel",
                code="200",
            )
            or 0
        ) >= 1
        assert promtool_check_metrics(httpx.get(daemon.url + "/metrics", timeout=5).text) == ""
    finally:
        assert daemon.stop() == 0
    assert jobs(simulator, status="pending") == [], "the exporter left a pending probe job behind"
    assert SIM_KEY not in daemon.log()


def test_sigterm_cancels_in_flight_jobs_and_submits(tmp_path: Path, simulator: Proc) -> None:
    script(simulator, "t/waiting", mode="stopped")
    # This model's job exists as soon as it is submitted, but the answer (with its id) comes late.
    script(simulator, "t/slow-submit", mode="stopped", submit_delay=0.8)
    probes = [
        probe("t/waiting", interval="1m", timeout="30s", status_poll_interval="200ms"),
        probe("t/slow-submit", interval="1m", timeout="30s", status_poll_interval="200ms"),
    ]
    config = write_config(tmp_path, simulator.url, probes, queues=("t/queue",))
    daemon = start_daemon(tmp_path, config, env=ENV, wait_ready=False)
    try:
        wait_until(
            lambda: len(jobs(simulator, status="pending")) == 2, timeout=15, what="both probe jobs pending"
        )
    finally:
        code = daemon.stop(signal.SIGTERM)
    assert code == 0, daemon.log()
    assert "Traceback" not in daemon.log()
    assert jobs(simulator, status="pending") == [], daemon.log()
    assert sorted(j["status"] for j in jobs(simulator)) == ["canceled", "canceled"]


def test_reload_removing_a_probe_cancels_its_job_and_probes_stay_off(tmp_path: Path, simulator: Proc) -> None:
    script(simulator, "r/model", mode="stopped")
    with_probe = write_config(
        tmp_path, simulator.url, [probe("r/model", interval="1m", timeout="30s")], queues=("r/queue",)
    )
    daemon = start_daemon(tmp_path, with_probe, env=ENV, wait_ready=False)
    try:
        wait_until(
            lambda: len(jobs(simulator, "r/model", "pending")) == 1, timeout=15, what="probe job pending"
        )
        write_config(tmp_path, simulator.url, [], queues=("r/queue",))
        resp = httpx.post(daemon.url + "/-/reload", timeout=10)
        assert resp.status_code == 200, resp.text
        assert jobs(simulator, "r/model", "pending") == []
        assert [j["status"] for j in jobs(simulator, "r/model")] == ["canceled"]
        s = scrape(daemon.url)
        assert s.series("together_queue_probe_success") == []
        # With no probe configured, queues keep being polled and nothing is submitted.
        submits = sim_requests(simulator, "POST /v1/queue/submit")
        queue = {"target": "together_queue/r/queue", "source": "together_queue"}
        before = s.value("inference_exporter_target_polls_total", **queue, result="success") or 0
        wait_until(
            lambda: (
                (
                    scrape(daemon.url).value(
                        "inference_exporter_target_polls_total", **queue, result="success"
                    )
                    or 0
                )
                >= before + 2
            ),
            timeout=15,
            what="two more queue polls",
        )
        assert sim_requests(simulator, "POST /v1/queue/submit") == submits == 1
    finally:
        assert daemon.stop() == 0


def test_histogram_counts_survive_reloads_that_keep_the_probe(tmp_path: Path, simulator: Proc) -> None:
    script(simulator, "h/model", claim_delay=0.0, run_seconds=0.1)
    fast = probe("h/model", interval="1s", timeout="800ms")
    config = write_config(tmp_path, simulator.url, [fast])
    daemon = start_daemon(tmp_path, config, env=ENV, wait_ready=False)

    def count() -> float:
        phase = {"model": "h/model", "phase": "queue_wait"}
        return scrape(daemon.url).value("together_queue_probe_phase_seconds_count", **phase) or 0

    try:
        wait_until(lambda: count() >= 2, timeout=20, what="two probes counted")
        # Another part of the config changes; this probe does not: its counts go on.
        write_config(tmp_path, simulator.url, [fast], queues=("h/queue",))
        before = count()
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        assert count() >= before
        wait_until(lambda: count() >= before + 1, timeout=20, what="a probe counted after the reload")
        text = scrape(daemon.url).text
        assert promtool_check_metrics(text) == ""
        # New buckets are a new histogram: the probe target is rebuilt and counts afresh.
        write_config(tmp_path, simulator.url, [{**fast, "buckets": "[1s, 1m]"}], queues=("h/queue",))
        grown = count()
        assert grown >= 3
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200

        def bounds() -> set[str]:
            found = scrape(daemon.url).series("together_queue_probe_phase_seconds_bucket")
            return {lbl["le"] for lbl, _ in found}

        wait_until(lambda: bounds() == {"1.0", "60.0", "+Inf"}, timeout=20, what="the new buckets")
        assert count() < grown
    finally:
        assert daemon.stop() == 0


def test_demo_runs_one_probe(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as logf:
        popen = subprocess.Popen(
            [sys.executable, "-m", "exporter", "demo", "--web.listen-address", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE,
            stderr=logf,
            text=True,
            cwd=REPO,
        )
    demo = Proc(popen, f"http://127.0.0.1:{port}", log_path)
    try:
        assert popen.stdout is not None
        assert "simulator at http://127.0.0.1:" in popen.stdout.readline()

        def probed() -> bool:
            try:
                s = scrape(demo.url)
            except httpx.HTTPError:
                return False
            # The demo's prod account probes one model; its series carry the account and its labels.
            labels = {"model": "demo-org/video-generator", "account": "prod", "team": "platform"}
            return s.value("together_queue_probe_success", **labels) == 1

        wait_until(probed, timeout=30, what="the demo's probe succeeding", proc=demo)
        assert len(scrape(demo.url).series("together_queue_probe_success")) == 1
    finally:
        assert demo.stop() == 0
