"""The daemon as a real process against the simulator: Together fine-tune jobs end to end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SIM_KEY
from tests.helpers import (
    Proc,
    add_fault,
    clear_faults,
    promtool_check_metrics,
    scrape,
    start_daemon,
    start_simulator,
    wait_for_reason,
    wait_until,
)

HEAD = """global:
  poll_interval: 1s
  timeout: 1s
  start_spread: 300ms
together:
  base_url: {url}/v1
  api_key_env: TEST_TOGETHER_KEY
  fine_tunes:
"""
CONFIG = (
    HEAD
    + """    resolution: 20
    logged_at_overlap: 1s
    retention: 6s
    max_keys: 50
    jobs:
      - id: ft-missing
      - id: ft-old
    discovery:
      enabled: true
      refresh_interval: 1s
"""
)

# Added once the daemon runs, so that discovery sees it running whatever the start-up time.
FINISHING: dict[str, Any] = {
    "id": "ft-finish",
    "steps": 12,
    "step_seconds": 0.3,
    "eval_every": 4,
    "post_seconds": 0.5,
}
JOBS: list[dict[str, Any]] = [
    {"id": "ft-live", "step_seconds": 0.3, "eval_every": 3},
    {"id": "ft-queued", "delay": 600, "step_seconds": 1},
    {"id": "ft-old", "steps": 200, "step_seconds": 1, "eval_every": 10, "delay": -5000},
    {
        "id": "ft-odd",
        "step_seconds": 0.5,
        "extra_rows": [
            {"step": 1, "row": {"train/loss": "NaN-as-text", "train/global_step": 1}},
            {"step": 1, "row": {"eval/loss": 0.5}},
            {"step": 2, "row": {**{f"train/k{i}": float(i) for i in range(60)}, "train/global_step": 2}},
        ],
    },
]


def sim_jobs(sim: Proc, *jobs: dict[str, Any], reset: bool = True) -> None:
    if reset:
        httpx.post(sim.url + "/_sim/fine-tunes", json={"action": "reset"}, timeout=5).raise_for_status()
    for job in jobs:
        httpx.post(sim.url + "/_sim/fine-tunes", json={"action": "add", **job}, timeout=5).raise_for_status()


def sim_report(sim: Proc) -> dict[str, dict[str, Any]]:
    doc: dict[str, dict[str, Any]] = httpx.get(sim.url + "/_sim/fine-tunes", timeout=5).json()
    return doc


def status_of(url: str, job_id: str) -> str | None:
    for labels, value in scrape(url).series("together_finetune_job_status"):
        if labels["job_id"] == job_id and value == 1:
            return labels["status"]
    return None


def test_fine_tunes_end_to_end(tmp_path: Path, simulator: Proc) -> None:
    sim_jobs(simulator, *JOBS)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=simulator.url))
    daemon = start_daemon(tmp_path, config, env={"TEST_TOGETHER_KEY": SIM_KEY})
    sim_jobs(simulator, FINISHING, reset=False)
    try:
        # Explicit and long finished: one read of its history, sampled to 20 train rows
        # plus all 20 eval rows, shown for the retention.
        wait_until(
            lambda: scrape(daemon.url).value("together_finetune_global_step", job_id="ft-old") == 200,
            timeout=10,
            what="ft-old read",
        )
        assert status_of(daemon.url, "ft-old") == "completed"
        report = sim_report(simulator)
        assert report["ft-old"]["rows_served"] == 40 and report["ft-old"]["rows_logged"] == 220
        # The finishing job is found, followed to completion and read once more.
        wait_until(
            lambda: status_of(daemon.url, "ft-finish") == "completed", timeout=20, what="ft-finish done"
        )
        s = scrape(daemon.url)
        assert s.value("together_finetune_global_step", job_id="ft-finish") == 12
        assert s.value("together_finetune_eval_loss", job_id="ft-finish") is not None
        assert s.types["together_finetune_train_loss"] == "gauge"
        report = sim_report(simulator)
        # Incremental: every logged row was served, and only the 1s overlaps again.
        assert report["ft-finish"]["rows_logged"] == 12 + 3
        assert 12 + 3 <= report["ft-finish"]["rows_served"] <= 3 * (12 + 3)
        # The queued job: info and progress, no training rows yet.
        assert status_of(daemon.url, "ft-queued") == "queued"
        assert s.value("together_finetune_queue_depth", job_id="ft-queued") == 1
        assert s.value("together_finetune_global_step", job_id="ft-queued") is None
        assert s.value("together_finetune_listed_jobs", status="running") == 2
        # Odd rows are skipped and counted; the key cap is flagged.
        odd = {"job_id": "ft-odd"}
        assert s.value("together_finetune_skipped_rows_total", **odd, reason="non_numeric_value") == 1
        assert s.value("together_finetune_skipped_rows_total", **odd, reason="missing_global_step") == 1
        assert s.value("together_finetune_key_limit_reached", **odd) == 1
        assert (s.value("together_finetune_dropped_values_total", **odd) or 0) >= 10
        assert (
            s.value(
                "inference_exporter_target_up", target="together_finetune/ft-odd", source="together_finetune"
            )
            == 1
        )
        assert promtool_check_metrics(s.text) == ""

        # A 404 marks its target down with a reason and is asked less and less often.
        missing = {"target": "together_finetune/ft-missing", "source": "together_finetune"}
        assert s.value("inference_exporter_target_up", **missing) == 0
        assert s.value("inference_exporter_target_error_info", **missing, reason="not_found") == 1

        def polls_and_requests() -> tuple[float, float]:
            m = scrape(daemon.url)
            polls = m.value("inference_exporter_target_polls_total", **missing, result="not_found") or 0
            reqs = (
                m.value(
                    "inference_exporter_upstream_requests_total",
                    source="together_finetune",
                    endpoint="/fine-tunes/{id}",
                    code="404",
                )
                or 0
            )
            return polls, reqs

        wait_until(lambda: polls_and_requests()[0] >= 7, timeout=15, what="seven polls of ft-missing")
        polls, reqs = polls_and_requests()
        assert 1 <= reqs <= 3 < polls

        # A reload of the same config keeps every job's state: no history is read again.
        step = scrape(daemon.url).value("together_finetune_global_step", job_id="ft-live") or 0
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        wait_until(
            lambda: (
                (scrape(daemon.url).value("together_finetune_global_step", job_id="ft-live") or 0) > step + 3
            ),
            timeout=10,
            what="ft-live advancing after the reload",
        )
        live = sim_report(simulator)["ft-live"]
        assert live["rows_served"] < 3 * live["rows_logged"]

        # After the retention the finished discovered job and its target are gone.
        wait_until(
            lambda: scrape(daemon.url).value("together_finetune_global_step", job_id="ft-finish") is None,
            timeout=10,
            what="ft-finish dropped",
        )
        # ... and at the next list refresh its target goes too.
        wait_until(
            lambda: (
                not [
                    lbl
                    for lbl, _ in scrape(daemon.url).series("inference_exporter_target_up")
                    if "ft-finish" in lbl["target"]
                ]
            ),
            timeout=5,
            what="ft-finish target removed",
        )
        after = scrape(daemon.url)
        assert after.value("together_finetune_global_step", job_id="ft-live") is not None
        # The explicit finished job keeps its target (health series kept) but no longer exports, and
        # was never read again.
        assert after.value("together_finetune_global_step", job_id="ft-old") is None
        old = {"target": "together_finetune/ft-old", "source": "together_finetune"}
        assert after.value("inference_exporter_target_up", **old) == 1
        assert sim_report(simulator)["ft-old"]["rows_served"] == 40
        # /targets lists it as finished and retired, with no schedule (not "up, every 1 s"),
        # and it is polled no more: its poll count stands still over several intervals.
        (row,) = [
            t
            for t in httpx.get(daemon.url + "/targets?format=json", timeout=5).json()["targets"]
            if t["id"] == "together_finetune/ft-old"
        ]
        assert (row["health"], row["interval_seconds"], row["retired"]) == ("finished", None, True)
        old_polls = {**old, "result": "success"}
        count = after.value("inference_exporter_target_polls_total", **old_polls)
        time.sleep(3)
        assert scrape(daemon.url).value("inference_exporter_target_polls_total", **old_polls) == count
        assert promtool_check_metrics(after.text) == ""
    finally:
        assert daemon.stop() == 0
    assert SIM_KEY not in daemon.log()


SKEW_CONFIG = """global:
  poll_interval: 500ms
  timeout: 1s
together:
  base_url: {url}/v1
  api_key_env: TEST_TOGETHER_KEY
  fine_tunes:
    logged_at_overlap: 2s
    jobs:
      - id: ft-async
"""


def test_late_evaluations_are_read_from_a_vendor_whose_clock_is_far_off(tmp_path: Path) -> None:
    """The vendor runs 15 minutes behind this machine; its asynchronous evaluations
    arrive after later train rows. Each evaluation is shown within a poll or two."""
    sim = start_simulator(tmp_path, [SIM_KEY], clock_offset=-900)
    job = {"id": "ft-async", "step_seconds": 0.2, "eval_every": 5, "eval_seconds": 1.5, "async_eval": True}
    sim_jobs(sim, job)
    config = tmp_path / "config.yaml"
    config.write_text(SKEW_CONFIG.format(url=sim.url))
    daemon = start_daemon(tmp_path, config, env={"TEST_TOGETHER_KEY": SIM_KEY})
    try:
        # The eval loss goes through at least four different evaluations' values.
        shown: set[float] = set()

        def four_evals() -> bool:
            value = scrape(daemon.url).value("together_finetune_eval_loss", job_id="ft-async")
            if value is not None:
                shown.add(value)
            return len(shown) >= 4

        wait_until(four_evals, timeout=20, what="four evaluations shown")
        s = scrape(daemon.url)
        step = s.value("together_finetune_global_step", job_id="ft-async") or 0
        # The newest evaluation is at most 1.5s (eval) + 1s (poll and scrape) behind training.
        assert (s.value("together_finetune_eval_loss", job_id="ft-async") or 0) > 0
        assert step >= 20
        assert (
            s.value(
                "inference_exporter_target_up",
                target="together_finetune/ft-async",
                source="together_finetune",
            )
            == 1
        )
    finally:
        assert daemon.stop() == 0
        sim.stop()


LIMIT_CONFIG = (
    HEAD
    + """    discovery:
      enabled: true
      refresh_interval: 1s
"""
)


def test_a_list_of_twenty_thousand_running_jobs_fails_the_discovery_and_keeps_its_jobs(
    tmp_path: Path, simulator: Proc
) -> None:
    """Such a list used to become 20,001 targets (+400 MB, stalls of seconds)."""
    sim_jobs(simulator, {"id": "ft-live", "step_seconds": 0.3, "eval_every": 3})
    config = tmp_path / "config.yaml"
    config.write_text(LIMIT_CONFIG.format(url=simulator.url))
    daemon = start_daemon(tmp_path, config, env={"TEST_TOGETHER_KEY": SIM_KEY})
    live = {"target": "together_finetune/ft-live", "source": "together_finetune"}
    finder = {"target": "together_finetune_discovery/fine-tunes", "source": "together_finetune_discovery"}
    try:
        wait_until(
            lambda: scrape(daemon.url).value("inference_exporter_target_up", **live) == 1,
            timeout=20,
            what="the running job to be found and polled",
        )
        jobs = [{"id": f"ft-{i:08x}", "status": "running"} for i in range(20_000)]
        add_fault(simulator, path="/v1/fine-tunes", kind="json", json={"data": jobs})
        wait_for_reason(daemon.url, finder["target"], finder["source"], "too_many_targets")
        before = (
            scrape(daemon.url).value("inference_exporter_target_polls_total", **live, result="success") or 0
        )
        wait_until(
            lambda: (
                (
                    scrape(daemon.url).value(
                        "inference_exporter_target_polls_total", **live, result="success"
                    )
                    or 0
                )
                > before + 1
            ),
            timeout=20,
            what="the job found before to keep being polled",
        )
        s = scrape(daemon.url)
        assert s.value("inference_exporter_shard_targets") == 2
        hits = {"source": "together_finetune_discovery", "limit": "max_targets", "account": "default"}
        assert (s.value("inference_exporter_limit_hits_total", **hits) or 0) >= 1
    finally:
        clear_faults(simulator)
        assert daemon.stop() == 0
