"""Staleness, hot reload and shutdown, through the real process."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SIM_KEY
from tests.helpers import Proc, add_fault, clear_faults, request_log, scrape, start_daemon, wait_until
from tests.integration.queue_config import KEY_ENV, queue_config, target

PATH = "/v1/queue/metrics"


def waiting(url: str, model: str) -> float | None:
    return scrape(url).value("together_queue_jobs_waiting", model=model)


@pytest.mark.integration
def test_failing_target_keeps_values_for_the_grace_then_they_go(tmp_path: Path, simulator: Proc) -> None:
    config = queue_config(tmp_path, simulator.url, ["s/fail", "s/fine"], stale_grace="3s")
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    try:
        wait_until(lambda: waiting(daemon.url, "s/fail") is not None, timeout=10, what="first values")
        add_fault(simulator, path=PATH, match={"model": "s/fail"}, kind="status", status=500)
        wait_until(
            lambda: scrape(daemon.url).value("inference_exporter_target_up", **target("s/fail")) == 0,
            timeout=10,
            what="target down",
        )
        # Down, yet its last values are still there: within the grace.
        s = scrape(daemon.url)
        assert s.value("together_queue_jobs_waiting", model="s/fail") is not None
        assert s.value("inference_exporter_target_error_info", **target("s/fail"), reason="server_error") == 1
        # After the grace its vendor series disappear; its health stays.
        wait_until(lambda: waiting(daemon.url, "s/fail") is None, timeout=10, what="series gone")
        s = scrape(daemon.url)
        last_ok = s.value("inference_exporter_target_last_success_timestamp_seconds", **target("s/fail"))
        assert last_ok is not None and time.time() - last_ok >= 3
        assert s.value("inference_exporter_target_series", **target("s/fail")) == 0
        assert s.value("together_queue_jobs_waiting", model="s/fine") is not None
        clear_faults(simulator)
        wait_until(lambda: waiting(daemon.url, "s/fail") is not None, timeout=10, what="values back")
    finally:
        daemon.stop()


def reload_metrics(url: str) -> tuple[float | None, float | None]:
    s = scrape(url)
    return (
        s.value("inference_exporter_config_last_reload_successful"),
        s.value("inference_exporter_config_last_reload_success_timestamp_seconds"),
    )


@pytest.mark.integration
def test_hot_reload_adds_removes_changes_and_rejects(tmp_path: Path, simulator: Proc) -> None:
    config = queue_config(tmp_path, simulator.url, ["r/keep", "r/drop"])
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    try:
        wait_until(lambda: waiting(daemon.url, "r/drop") is not None, timeout=10, what="first values")
        ok, ts0 = reload_metrics(daemon.url)
        assert ok == 1 and ts0 is not None and ts0 > 0

        # POST /-/reload: r/drop removed, r/new added, r/keep's interval changed.
        text = config.read_text().replace("    - model: r/drop\n", "    - model: r/new\n")
        text = text.replace("    - model: r/keep\n", "    - model: r/keep\n      poll_interval: 2s\n")
        config.write_text(text)
        resp = httpx.post(daemon.url + "/-/reload", timeout=10)
        assert resp.status_code == 200, resp.text
        # A removed target's series disappear at once, health included.
        s = scrape(daemon.url)
        assert s.value("together_queue_jobs_waiting", model="r/drop") is None
        assert s.value("inference_exporter_target_up", **target("r/drop")) is None
        assert s.value("inference_exporter_target_up", **target("r/new")) is not None
        wait_until(lambda: waiting(daemon.url, "r/new") is not None, timeout=10, what="added target polled")
        wait_until(
            lambda: waiting(daemon.url, "r/keep") is not None, timeout=10, what="changed target polled"
        )
        ok, ts1 = reload_metrics(daemon.url)
        assert ok == 1 and ts1 is not None and ts1 > ts0

        # An invalid config is rejected with its reason; the running config stays.
        good = config.read_text()
        config.write_text(good.replace("poll_interval: 1s", "poll_interval: often"))
        resp = httpx.post(daemon.url + "/-/reload", timeout=10)
        assert resp.status_code == 500
        # The answer says what failed without echoing the file; the log has the details.
        assert "1 problem(s) in the config file" in resp.text
        assert "often" not in resp.text and str(config) not in resp.text
        ok, ts2 = reload_metrics(daemon.url)
        assert ok == 0 and ts2 == ts1
        assert "config reload failed" in daemon.log() and "global.poll_interval" in daemon.log()
        before = scrape(daemon.url).value(
            "inference_exporter_target_last_success_timestamp_seconds", **target("r/new")
        )
        wait_until(
            lambda: (
                (
                    scrape(daemon.url).value(
                        "inference_exporter_target_last_success_timestamp_seconds", **target("r/new")
                    )
                    or 0
                )
                > (before or 0)
            ),
            timeout=10,
            what="old config still polling",
        )

        # SIGHUP: the same, by signal. A bad file first, then a good one.
        config.write_text(good.replace("r/new", "r/new\n      bogus_key: 1"))
        daemon.popen.send_signal(signal.SIGHUP)
        wait_until(
            lambda: daemon.log().count("config reload failed") >= 2, timeout=10, what="SIGHUP rejected"
        )
        assert "bogus_key" in daemon.log() and reload_metrics(daemon.url)[0] == 0
        config.write_text(good.replace("r/new", "r/hup"))
        daemon.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: reload_metrics(daemon.url)[0] == 1, timeout=10, what="SIGHUP reload")
        s = scrape(daemon.url)
        assert s.value("inference_exporter_target_up", **target("r/hup")) is not None
        assert s.value("inference_exporter_target_up", **target("r/new")) is None
        assert (s.value("inference_exporter_config_last_reload_success_timestamp_seconds") or 0) > (ts2 or 0)
    finally:
        assert daemon.stop() == 0


@pytest.mark.integration
def test_sigterm_stops_within_two_seconds_cancelling_in_flight_polls(tmp_path: Path, simulator: Proc) -> None:
    models = ["t/a", "t/b", "t/c"]
    config = queue_config(tmp_path, simulator.url, models, interval="60s", timeout="30s")
    # Every request hangs for longer than the test: polls are in flight when we stop.
    add_fault(simulator, path=PATH, kind="delay", delay=40)
    start = time.time()
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY}, wait_ready=False)
    wait_until(lambda: len(request_log(simulator, start, PATH)) >= 3, timeout=10, what="requests in flight")
    t0 = time.monotonic()
    daemon.popen.send_signal(signal.SIGTERM)
    try:
        rc = daemon.popen.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        daemon.popen.kill()
        pytest.fail(f"still running 2s after SIGTERM:\n{daemon.log()}")
    elapsed = time.monotonic() - t0
    assert rc == 0, daemon.log()
    log = daemon.log()
    m = re.search(r"cancelled_polls=(\d+)", log)
    assert m and int(m.group(1)) == 3, log
    assert "Traceback" not in log
    assert elapsed < 2.0


@pytest.mark.integration
def test_reload_over_http_needs_the_lifecycle_flag(tmp_path: Path, simulator: Proc) -> None:
    config = queue_config(tmp_path, simulator.url, ["l/one"])
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY}, lifecycle=False)
    try:
        resp = httpx.post(daemon.url + "/-/reload", timeout=10)
        assert resp.status_code == 403 and "--web.enable-lifecycle" in resp.text
        # SIGHUP always reloads.
        config.write_text(config.read_text() + "    - model: l/two\n")
        daemon.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: waiting(daemon.url, "l/two") is not None, timeout=10, what="l/two after SIGHUP")
    finally:
        assert daemon.stop() == 0


@pytest.mark.integration
def test_a_reload_that_would_stop_watching_everything_is_refused(tmp_path: Path, simulator: Proc) -> None:
    config = queue_config(tmp_path, simulator.url, ["e/one"])
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    try:
        wait_until(lambda: waiting(daemon.url, "e/one") is not None, timeout=10, what="first values")
        good = config.read_text()
        for half_written in ("", "# only a comment\n", "global:\n  poll_interval: 1s\n"):
            config.write_text(half_written)
            resp = httpx.post(daemon.url + "/-/reload", timeout=10)
            assert resp.status_code == 500 and "watches nothing" in resp.text
            assert reload_metrics(daemon.url)[0] == 0
            assert waiting(daemon.url, "e/one") is not None  # still watched, state kept
        assert "config reload refused" in daemon.log()
        config.write_text(good)
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        assert reload_metrics(daemon.url)[0] == 1
    finally:
        assert daemon.stop() == 0


@pytest.mark.integration
def test_sigterm_exits_promptly_while_a_reload_is_reading_the_config(tmp_path: Path, simulator: Proc) -> None:
    config = queue_config(tmp_path, simulator.url, ["t/one"])
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    try:
        # Nearly the largest config allowed: parsing it takes a while.
        filler = "".join(f"# {'x' * 70}\n" for _ in range(12_000))
        config.write_text(
            config.read_text() + filler + "".join(f"    - model: t/m{i}\n" for i in range(4000))
        )
        daemon.popen.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        t0 = time.monotonic()
        daemon.popen.send_signal(signal.SIGTERM)
        daemon.popen.wait(10)
        assert time.monotonic() - t0 < 2
        assert daemon.popen.returncode == 0
    finally:
        daemon.stop()


@pytest.mark.integration
def test_the_log_tells_what_discovery_found_and_when_the_exporter_is_ready(
    tmp_path: Path, simulator: Proc
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "global: {poll_interval: 1s, timeout: 1s, start_spread: 200ms}\n"
        f"together:\n  base_url: {simulator.url}/v1\n  api_key_env: {KEY_ENV}\n"
        "  fine_tunes:\n    discovery: {enabled: true, refresh_interval: 1s}\n"
    )
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    try:
        wait_until(lambda: "ready: every target polled once" in daemon.log(), timeout=10, what="ready line")
        log = daemon.log()
        found = re.search(
            r"discovery changed its targets.*discovery=together_finetune_discovery/fine-tunes.*added=(\d+)",
            log,
        )
        assert found is not None and int(found.group(1)) >= 1, log
        ready = re.search(r"ready: every target polled once.*targets=(\d+)", log)
        assert ready is not None
        # The discovery itself and what it found: the same count the pages show.
        rows = httpx.get(daemon.url + "/targets?format=json", timeout=5).json()["targets"]
        assert int(ready.group(1)) == len(rows) == 1 + int(found.group(1))
        assert re.search(r"listening.*configured_targets=1", log)
    finally:
        assert daemon.stop() == 0
