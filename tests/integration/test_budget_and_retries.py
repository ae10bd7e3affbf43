"""Retries and the request budget, proven by the simulator's timestamped request log."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from tests.conftest import SIM_KEY
from tests.helpers import Proc, add_fault, clear_faults, request_log, scrape, start_daemon, wait_until
from tests.integration.queue_config import KEY_ENV, queue_config, target

PATH = "/v1/queue/metrics"
# Arrival times are send times plus scheduling noise; the budget's own spacing absorbs
# up to 100 ms of it (JITTER_MARGIN), the test only allows a little more for a busy CI.
JITTER = 0.03


def max_in_window(times: list[float], window: float) -> int:
    """Most requests in any half-open window [t, t + window)."""
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def model_of(entry: dict[str, object]) -> str:
    return str(entry["path"]).split("model=", 1)[1].replace("%2F", "/")


@pytest.mark.integration
def test_budget_holds_through_a_retry_storm(tmp_path: Path, simulator: Proc) -> None:
    """Four targets polled every second fit a budget of 5/s, until they fail with 503
    and their retries want up to 16 requests/s."""
    rate = 5
    models = [f"storm/m{i}" for i in range(4)]
    config = queue_config(tmp_path, simulator.url, models, together_extra=[f"requests_per_second: {rate}"])
    add_fault(simulator, path=PATH, kind="status", status=503)
    start = time.time()
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY}, wait_ready=True)
    try:
        time.sleep(6)
        s = scrape(daemon.url)
        log = request_log(simulator, start, PATH)
        clear_faults(simulator)
        wait_until(
            lambda: all(
                scrape(daemon.url).value("inference_exporter_target_up", **target(m)) == 1 for m in models
            ),
            timeout=20,
            what="recovery under the budget",
        )
    finally:
        daemon.stop()
    times = [float(str(e["t"])) for e in log]
    assert len(times) >= 20, "the storm never happened"
    # No window of one second saw more than `rate` requests (minus delivery jitter).
    assert max_in_window(times, 1.0 - JITTER) <= rate, sorted(times)
    # The budget was what held the storm back: requests were retried and refused locally.
    assert sum(v for _, v in s.series("inference_exporter_upstream_retries_total")) > 0
    refused = s.value("inference_exporter_upstream_budget_refusals_total", vendor="together") or 0
    waited = s.value("inference_exporter_upstream_budget_wait_seconds_total", vendor="together") or 0
    assert refused > 0 and waited > 0, s.text
    # Targets are down for what the vendor did; budget_exhausted only shows for a poll
    # whose very first request found no slot.
    reasons = {labels["reason"] for labels, _ in s.series("inference_exporter_target_error_info")}
    assert "server_error" in reasons and reasons <= {"server_error", "budget_exhausted"}, reasons


@pytest.mark.integration
@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "3"}, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"}],
    ids=["retry-after", "x-ratelimit-reset"],
)
def test_rate_limit_hint_is_honoured_across_polls(
    tmp_path: Path, simulator: Proc, headers: dict[str, str]
) -> None:
    """After a 429 asking for 3 s, the same request is not sent again for 3 s (polls are 1 s apart)."""
    model = "limited/m"
    config = queue_config(tmp_path, simulator.url, [model, "other/m"])
    add_fault(simulator, path=PATH, match={"model": model}, kind="status", status=429, headers=headers)
    start = time.time()
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY}, wait_ready=True)
    try:
        time.sleep(7)
        s = scrape(daemon.url)
    finally:
        daemon.stop()
    log = request_log(simulator, start, PATH)
    mine = sorted(float(str(e["t"])) for e in log if model_of(e) == model)
    other = [e for e in log if model_of(e) == "other/m"]
    assert len(mine) >= 2
    gaps = [b - a for a, b in itertools.pairwise(mine)]
    assert min(gaps) >= 3 - JITTER, gaps
    # The other model is not held back by this model's limit.
    assert len(other) >= 6
    assert s.value("inference_exporter_target_up", **target("other/m")) == 1
    polls = s.value("inference_exporter_target_polls_total", **target(model), result="rate_limited") or 0
    assert polls >= 5  # polls in between fail at once with rate_limited, sending nothing


@pytest.mark.integration
def test_unauthorized_is_not_retried(tmp_path: Path, simulator: Proc) -> None:
    models = [f"auth/m{i}" for i in range(5)]
    config = queue_config(tmp_path, simulator.url, models)
    add_fault(simulator, path=PATH, kind="status", status=401)
    start = time.time()
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY}, wait_ready=True)
    try:
        time.sleep(3)
        log = request_log(simulator, start, PATH)
        s = scrape(daemon.url)
    finally:
        daemon.stop()
    polls = sum(
        v
        for labels, v in s.series("inference_exporter_target_polls_total")
        if labels["result"] == "unauthorized"
    )
    assert polls >= 10
    # Each poll got at most one 401: a 401 is never asked again within a poll (polls in
    # flight at the log read may have theirs logged already).
    answered = [e for e in log if e["status"] == 401]
    assert 0 < len(answered) <= polls + len(models), (len(answered), polls)
    # Nearly every request was answered 401; a retry happens only after a timeout on a busy machine.
    assert len(log) - len(answered) <= len(models), log
