"""A relay between scrapers and a vendor's rate-limited endpoint, as a real daemon runs it
against the simulator: any number of scrapes within the vendor's limit, a 429 served
from the last good body without a gap and up to its staleness bound only, a malformed
body refused with the last good one kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    Proc,
    Scrape,
    add_fault,
    clear_faults,
    promtool_check_metrics,
    request_log,
    scrape,
    start_daemon,
    wait_until,
    write_yaml,
)
from tests.integration.relay_sim import (
    DEDICATED,
    ENV,
    ORG_SOURCE,
    ORG_TARGET,
    relay_value,
    relayed,
    simulator,
    targets,
)

# The simulator's limit on each endpoint: requests per minute per organisation.
LIMIT = 6


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Proc]:
    yield from simulator(tmp_path)


def config(sim: str, org: str, together: str = "") -> str:
    return f"""\
global: {{start_spread: 100ms}}
baseten:
  name: prod
  base_url: {sim}
  api_key_env: RELAY_KEY
  organisation_metrics:
    url: {sim}/metrics
    {org}
{together}"""


def most_in_a_minute(times: list[float]) -> int:
    """The most requests any 60-second window holds."""
    return max((sum(1 for u in times if t <= u < t + 60) for t in times), default=0)


@pytest.mark.integration
def test_three_scrapers_every_5s_never_push_the_vendor_past_its_limit(tmp_path: Path, sim: Proc) -> None:
    together = f"""\
together:
  name: prod
  base_url: {sim.url}/v1
  api_key_env: RELAY_KEY
  prometheus_endpoints: [{{name: dedicated, url: {sim.url}{DEDICATED}}}]
"""
    # The organisation endpoint at its defaults (30 s), the generic one at its own (60 s).
    daemon = start_daemon(tmp_path, write_yaml(tmp_path, config(sim.url, "", together)), env=ENV)
    start = time.time()
    seen: list[tuple[float, int, bool]] = []
    failures: list[str] = []

    def scraper() -> None:
        for _ in range(14):
            t0 = time.monotonic()
            try:
                s = scrape(daemon.url)
                up = s.value(
                    "inference_exporter_target_up", target=ORG_TARGET, source=ORG_SOURCE, account="prod"
                )
                seen.append((time.time(), len(relayed(s, "relay_baseten_")), up == 1))
            except (httpx.HTTPError, AssertionError) as exc:
                failures.append(repr(exc))
            time.sleep(max(0.0, 5 - (time.monotonic() - t0)))

    try:
        threads = [threading.Thread(target=scraper) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(100)
        assert not failures
        assert len(seen) == 42
        # Every scrape is served from the relay's body: the series are there in each one
        # (the daemon was ready, so the first fetch was in), the target up.
        assert all(series > 100 and up for _, series, up in seen)
        fetches = {}
        for route in ("/metrics", DEDICATED):
            log = [e for e in request_log(sim, route=route) if float(str(e["t"])) >= start - 5]
            statuses = [e["status"] for e in log]
            assert statuses and set(statuses) == {200}, (route, statuses)
            fetches[route] = (len(log), most_in_a_minute([float(str(e["t"])) for e in log]))
            assert fetches[route][1] <= LIMIT, route
        # 42 scrapes in ~70 s, and one fetch per 30 s interval.
        assert 2 <= fetches["/metrics"][0] <= 4, fetches
        print(
            f"relay: {len(seen)} scrapes in {time.time() - start:.0f}s; requests (most in a minute): "
            f"organisation {fetches['/metrics']}, dedicated {fetches[DEDICATED]}; no 429"
        )
        assert promtool_check_metrics(scrape(daemon.url).text) == ""
    finally:
        daemon.stop()


def wait_for_reason(daemon: Proc, reason: str) -> None:
    """Wait until the organisation relay is down for ``reason``."""

    def down() -> bool:
        s = scrape(daemon.url)
        labels = {"target": ORG_TARGET, "source": ORG_SOURCE, "account": "prod"}
        return s.value("inference_exporter_target_error_info", reason=reason, **labels) == 1

    wait_until(down, 20, f"the relay to fail with {reason}", proc=daemon)


def org_series(s: Scrape) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return relayed(s, "relay_baseten_")


@pytest.mark.integration
def test_a_429_is_served_from_the_last_body_without_a_gap_then_dropped_after_stale_after(
    tmp_path: Path, sim: Proc
) -> None:
    # The global stale_grace (5m) is far longer: what drops the body is the relay's bound.
    org = "interval: 10s\n    stale_after: 25s"
    daemon = start_daemon(tmp_path, write_yaml(tmp_path, config(sim.url, org)), env=ENV)
    try:
        wait_until(lambda: org_series(scrape(daemon.url)) != {}, 20, "the relayed body", proc=daemon)
        add_fault(sim, path="/metrics", kind="status", status=429, headers={"Retry-After": "3"})
        faulted = time.time()
        fetched = relay_value(scrape(daemon.url), "body_fetch_timestamp_seconds", ORG_TARGET)
        assert fetched is not None
        # Until the body is older than 25 s, every scrape has it and the target is up.
        held: list[Scrape] = []
        while True:
            s = scrape(daemon.url)
            if not org_series(s):
                dropped = time.time()
                break
            assert time.time() - fetched < 25 + 10 + 3, "the body outlived its bound"
            held.append(s)
            time.sleep(0.5)
        last = held[-1]
        assert relay_value(last, "body_fetch_timestamp_seconds", ORG_TARGET) == fetched
        assert (
            last.value("inference_exporter_target_up", target=ORG_TARGET, source=ORG_SOURCE, account="prod")
            == 1
        )
        held_polls = relay_value(last, "held_polls_total", ORG_TARGET)
        assert held_polls is not None and held_polls >= 1
        assert dropped - fetched >= 25
        print(
            f"relay: 429 from {faulted - fetched:.1f}s after the last fetch; body served in "
            f"{len(held)} scrapes, no gap, dropped {dropped - fetched:.1f}s after its fetch "
            f"(stale_after 25s, interval 10s, stale_grace 5m)"
        )
        # Dropped: the target down with the vendor's reason, the body gone from every scrape.
        wait_for_reason(daemon, "rate_limited")
        s = scrape(daemon.url)
        assert org_series(s) == {}
        assert relay_value(s, "body_fetch_timestamp_seconds", ORG_TARGET) is None
        row = targets(daemon)[ORG_TARGET]
        assert row["last_error"] == "rate_limited" and row["series"] == 0
        answered = [e["status"] for e in request_log(sim, route="/metrics") if float(str(e["t"])) > faulted]
        assert answered and set(answered) == {429}
        # One request per poll, none retried: the polls are 10 s apart.
        assert len(answered) <= (time.time() - faulted) / 10 + 1
        clear_faults(sim)
        wait_until(lambda: org_series(scrape(daemon.url)) != {}, 20, "the relay to recover", proc=daemon)
    finally:
        daemon.stop()


MALFORMED = '# TYPE baseten_replicas_active gauge\nbaseten_replicas_active{model_id="m1",stage=dev} 2\n'


@pytest.mark.integration
def test_a_malformed_body_fails_invalid_response_and_the_last_good_one_is_kept(
    tmp_path: Path, sim: Proc
) -> None:
    daemon = start_daemon(tmp_path, write_yaml(tmp_path, config(sim.url, "interval: 10s")), env=ENV)
    try:
        wait_until(lambda: org_series(scrape(daemon.url)) != {}, 20, "the relayed body", proc=daemon)
        add_fault(sim, path="/metrics", kind="body", body=MALFORMED, times=1)
        good = org_series(scrape(daemon.url))
        wait_for_reason(daemon, "invalid_response")
        detail = str(targets(daemon)[ORG_TARGET]["last_error_detail"])
        assert "line 2: the value of label stage must be a double-quoted string" in detail
        # The last good body's series stay (the store keeps a failing target's values)...
        assert org_series(scrape(daemon.url)) == good
        # ... and a rate-limited poll serves that body again: the target is up on it.
        add_fault(sim, path="/metrics", kind="status", status=429, headers={"Retry-After": "2"})
        wait_until(
            lambda: (relay_value(scrape(daemon.url), "held_polls_total", ORG_TARGET) or 0) >= 1,
            20,
            "a poll served from the held body",
            proc=daemon,
        )
        s = scrape(daemon.url)
        assert (
            s.value("inference_exporter_target_up", target=ORG_TARGET, source=ORG_SOURCE, account="prod") == 1
        )
        assert org_series(s) == good
        assert promtool_check_metrics(s.text) == ""
    finally:
        daemon.stop()
