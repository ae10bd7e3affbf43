"""bcrypt under pressure: a shutdown never waits for a check, and a configured user gets in
while made-up user names are being checked.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.web.webconfig.auth import dummy_hash
from tests.helpers import start_daemon, wait_until
from tests.integration.live_web import live

pytestmark = pytest.mark.integration


def hashed(password: str, cost: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def seconds_for_cost(cost: int) -> float:
    """How long one check of that cost takes on this machine now (from a cost-8 check)."""
    started = time.perf_counter()
    bcrypt.checkpw(b"x", dummy_hash(8))
    return (time.perf_counter() - started) * (1 << (cost - 8))


def slow_cost(at_least: float) -> int:
    """The lowest cost whose check takes at least ``at_least`` seconds here."""
    cost = 10
    while seconds_for_cost(cost) < at_least and cost < 20:
        cost += 1
    return cost


def test_sigterm_exits_within_two_seconds_while_a_slow_check_runs(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("global: {}\n")
    # A user whose hash takes several seconds to check (no password matches it: it need not be real).
    cost = slow_cost(4.0)
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {hashed('pw', 4)}\n  slow: {dummy_hash(cost).decode()}\n")
    client = httpx.Client(auth=("prom", "pw"), timeout=5)
    daemon = start_daemon(tmp_path, config, extra_args=["--web.config.file", str(web)], client=client)
    try:

        def guess() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the daemon goes away while it checks
                httpx.get(daemon.url + "/metrics", auth=("slow", "guess"), timeout=30)

        checking = threading.Thread(target=guess, daemon=True)
        checking.start()
        time.sleep(1.0)  # the check is running
        started = time.monotonic()
        daemon.popen.send_signal(signal.SIGTERM)
        try:
            rc = daemon.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("still running 20 s after SIGTERM")
        elapsed = time.monotonic() - started
        assert rc == 0, daemon.log()
        assert elapsed < 2.0, f"exit took {elapsed:.1f}s with a cost-{cost} check running"
        assert "Traceback" not in daemon.log()
    finally:
        daemon.stop()


def test_a_configured_user_gets_in_while_made_up_names_are_checked(tmp_path: Path) -> None:
    cost = slow_cost(0.3)
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {hashed('right', cost)}\n")
    codes: list[int] = []
    stop = threading.Event()

    def flood(url: str, name: str) -> None:
        with httpx.Client(timeout=30) as c:
            for _ in range(40):  # bounded
                if stop.is_set():
                    return
                codes.append(c.get(url, auth=(name, "guess")).status_code)

    with live(tmp_path, web) as s:
        url = s.http + "/metrics"
        floods = [threading.Thread(target=flood, args=(url, f"nobody{i}"), daemon=True) for i in range(12)]
        for t in floods:
            t.start()
        wait_until(lambda: len(codes) >= 12, 30, "the flood under way")
        started = time.monotonic()
        resp = httpx.get(url, auth=("prom", "right"), timeout=30)
        took = time.monotonic() - started
        stop.set()
        for t in floods:
            t.join(60)
    assert resp.status_code == 200, resp.text
    assert took < 10 * seconds_for_cost(cost) + 1, took
    # Made-up names never get in, and learn nothing but 401 (or 503 when the queue is full).
    assert set(codes) <= {401, 503} and 401 in codes
