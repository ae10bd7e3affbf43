"""End to end: the demo relays prod's Baseten organisation endpoint, and three Prometheus
servers' worth of scrapes (three scrapers, every 5 s) never cost the organisation a 429.

Baseten allows 6 requests a minute per organisation on that endpoint; the simulator
enforces the same. The demo's relay fetches once per interval whatever the number of
scrapers, so the simulator's request log shows a few fetches a minute, all answered, and
every scrape shows the body of one of those fetches.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import httpx
import pytest

from exporter.simulator.prom_endpoints import LIMIT, WINDOW
from tests.e2e.demo import DEMO_ENV, KEY, STAGING_KEY, demo_doc, write_config
from tests.helpers import Proc, Scrape, parse, start_daemon, start_simulator, wait_until

pytestmark = pytest.mark.e2e

SCRAPERS = 3
EVERY = 5.0
# Longer than one window of the vendor's limit, and than two of the relay's intervals.
DURATION = 65.0
ORG_ROUTE = "/metrics"
# One relayed series, to follow the bodies the scrapes show.
SERIES = {"deployment_id": "d1prod", "status_code": "200"}


def org_requests(sim: Proc) -> list[dict[str, object]]:
    """The organisation endpoint's requests in the simulator's log (all organisations)."""
    log: list[dict[str, object]] = httpx.get(
        sim.url + "/_sim/requests/log", params={"route": ORG_ROUTE}, timeout=10
    ).json()
    return [e for e in log if e["method"] == "GET"]


def pick(scrape: Scrape, name: str, **labels: str) -> float | None:
    """The value of the one series of ``name`` carrying these labels (among others); None if none."""
    found = [v for lbls, v in scrape.series(name) if labels.items() <= lbls.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def most_in_a_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


def scraper(url: str, until: float, out: list[Scrape], errors: list[str]) -> None:
    """Scrapes every ``EVERY`` seconds until ``until``, as one Prometheus server would."""
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < until:
            began = time.monotonic()
            try:
                resp = client.get(url + "/metrics")
                resp.raise_for_status()
                out.append(parse(resp.text))
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
            time.sleep(max(0.0, EVERY - (time.monotonic() - began)))


def test_three_scrapers_every_5s_never_cost_the_organisation_a_429(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path, [KEY], orgs={"staging": STAGING_KEY})
    procs: list[Proc] = [sim]
    try:
        doc = demo_doc(sim.url)
        (prod,) = [a for a in doc["baseten"]["accounts"] if "organisation_metrics" in a]
        assert prod["name"] == "prod"
        daemon = start_daemon(tmp_path, write_config(tmp_path, doc), env=DEMO_ENV)
        procs.append(daemon)

        def relayed() -> float | None:
            text = httpx.get(daemon.url + "/metrics", timeout=5).text
            return pick(parse(text), "relay_baseten_inference_requests_total", account="prod", **SERIES)

        wait_until(lambda: relayed() is not None, 20, "the first relayed body", proc=daemon)
        scrapes: list[list[Scrape]] = [[] for _ in range(SCRAPERS)]
        errors: list[str] = []
        until = time.monotonic() + DURATION
        threads = [threading.Thread(target=scraper, args=(daemon.url, until, out, errors)) for out in scrapes]
        for t in threads:
            t.start()
            time.sleep(EVERY / SCRAPERS)  # scrapers out of phase, as independent servers are
        for t in threads:
            t.join(DURATION + 30)
        assert not errors, errors
        assert all(len(s) >= DURATION // EVERY for s in scrapes), [len(s) for s in scrapes]

        log = org_requests(sim)
        # Only prod relays, and every one of its fetches was answered.
        assert {e["org"] for e in log} == {"default"}
        assert [e["status"] for e in log] == [200] * len(log), log
        times = sorted(float(str(e["t"])) for e in log)
        assert 2 <= len(times) <= math.ceil((DURATION + 20) / 30) + 1, times
        assert most_in_a_window(times, WINDOW) <= LIMIT
        # Every scrape showed the body of one of those fetches: no more distinct values than fetches.
        seen = {
            pick(s, "relay_baseten_inference_requests_total", account="prod", **SERIES)
            for server in scrapes
            for s in server
        }
        assert None not in seen and 1 <= len(seen) <= len(times), seen
        last = scrapes[0][-1]
        assert pick(last, "inference_exporter_upstream_requests_total", source="baseten_relay", code="200")
        assert (
            pick(last, "inference_exporter_upstream_requests_total", source="baseten_relay", code="429")
            is None
        )
        assert pick(last, "inference_exporter_relay_held_polls_total", source="baseten_relay") == 0
        assert pick(last, "inference_exporter_target_up", source="baseten_relay", account="prod") == 1
        daemon.stop()
        procs.remove(daemon)

        # The limit is real: scraping the vendor directly, the same three servers would
        # have met a 429 within the first minute.
        statuses = [
            httpx.get(sim.url + ORG_ROUTE, headers={"Authorization": f"Api-Key {KEY}"}, timeout=5).status_code
            for _ in range(LIMIT + 1)
        ]
        assert statuses[-1] == 429, statuses
    finally:
        for p in reversed(procs):
            p.stop()
