"""What one Baseten answer can make is bounded: series, families, label lengths, memory kept."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from exporter.core.scope import Scope
from exporter.engine.poller import Outcome, poll_with_deadline
from exporter.sources.base import Target
from exporter.sources.baseten.api import BasetenAPI
from exporter.sources.baseten.config import Effective
from exporter.sources.baseten.discovery import DeploymentDiscovery, DeploymentDiscoverySettings
from exporter.sources.baseten.target import DeploymentSettings, DeploymentTarget
from exporter.upstream.client import UpstreamStats
from tests.helpers import Scrape, exposition, mock_clients, parse
from tests.unit.baseten_docs import desc, response

NOW = 1_700_000_130.0
MODE = Effective(mode="CURRENT", metrics=(), window=600.0, counter_window=300.0, delay=120.0)
SERIES = Effective(mode="SERIES", metrics=(), window=600.0, counter_window=300.0, delay=0.0)
HITS = "inference_exporter_limit_hits_total"


def gauges(names: int, sets_each: int, value: str = "r") -> dict[str, Any]:
    """A CURRENT answer of ``names`` gauges with ``sets_each`` label sets each."""
    sets = [{"replica": f"{value}{j}"} for j in range(sets_each)]
    descriptors = [desc(f"baseten_m{i}", sets=sets) for i in range(names)]
    return response("CURRENT", descriptors, [(0, [[1.0] * sets_each for _ in range(names)])])


class Account:
    """One Baseten account on an in-process fake: each deployment answers what ``docs``
    holds for its id (a document, or a function of the request)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.docs: dict[str, Any] = {}
        self.api = BasetenAPI(mock_clients("baseten", self._answer, UpstreamStats(self.registry)))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        if request.url.path == "/v1/models":
            return httpx.Response(200, json=self.docs["models"])
        if parts[-1] == "deployments":
            return httpx.Response(200, json=self.docs[f"deployments/{parts[3]}"])
        doc = self.docs[parts[5]]
        return httpx.Response(200, json=doc(request) if callable(doc) else doc)

    def target(self, deployment: str, **settings: Any) -> DeploymentTarget:
        base: dict[str, Any] = {"request": MODE, "interval": 30.0, "timeout": 5.0}
        return DeploymentTarget(self.api, "m1", deployment, DeploymentSettings(**{**base, **settings}))

    def hits(self, limit: str, source: str = "baseten") -> float:
        value = self.registry.get_sample_value(HITS, {"source": source, "limit": limit, "account": "default"})
        return value or 0.0


def poll(target: Target, now: float = NOW) -> Outcome:
    return asyncio.run(poll_with_deadline(target, now))


def scrape(outcome: Outcome) -> Scrape:
    assert outcome.data is not None, outcome.detail
    return parse(exposition([outcome.data]).decode())


def test_an_answer_past_the_series_limit_fails_only_its_target_and_builds_nothing() -> None:
    """One 2.5 MB answer used to become 100,015 series of a shared exposition."""
    account = Account()
    account.docs["big"] = gauges(5, 20_003)
    account.docs["small"] = gauges(2, 3)
    big, small = account.target("big"), account.target("small")
    refused = poll(big)
    assert refused.reason == "too_many_series"
    assert "100015 series" in refused.detail and "max_series_per_target (50000)" in refused.detail
    assert scrape(poll(small)).value("baseten_m1", model_id="m1", deployment_id="small", replica="r2") == 1
    assert account.hits("max_series_per_target") == 1
    # Refused before any descriptor was built: nothing of it is kept.
    assert big.descriptors.get((1024, "baseten_m0", "GAUGE", "COUNT", ())) is None
    assert not big.descriptors._current and not big.descriptors._last


def test_the_series_limit_is_the_accounts() -> None:
    account = Account()
    account.docs["d1"] = gauges(2, 3)
    assert poll(account.target("d1", scope=Scope(max_series=6))).data is not None
    assert poll(account.target("d1", scope=Scope(max_series=5))).reason == "too_many_series"


def test_twenty_thousand_descriptors_are_too_many_families() -> None:
    account = Account()
    account.docs["d1"] = gauges(20_000, 1)
    refused = poll(account.target("d1"))
    assert refused.reason == "too_many_families"
    assert "max_families_per_target (2000)" in refused.detail
    assert account.hits("max_families_per_target") == 1


def test_families_are_counted_as_laid_out_too() -> None:
    """A histogram's stat label values each make a family of their own."""
    account = Account()
    stats = [{"stat": f"s{i}"} for i in range(30)]
    account.docs["d1"] = response(
        "CURRENT", [desc("baseten_lat_seconds", "HISTOGRAM", "SECONDS", stats)], [(0, [[0.1] * 30])]
    )
    assert poll(account.target("d1", max_families=30)).data is not None
    assert poll(account.target("d1", max_families=29)).reason == "too_many_families"


def test_a_reload_that_changes_the_limits_applies_them_to_the_running_target() -> None:
    account = Account()
    account.docs["d1"] = gauges(3, 1, value="r" * 40)
    running = account.target("d1")
    assert poll(running).data is not None
    assert running.reconfigure(account.target("d1", max_families=2))
    assert poll(running).reason == "too_many_families"
    assert running.reconfigure(account.target("d1", max_label_length=39))
    # The descriptors checked under the old limits are checked again.
    assert scrape(poll(running)).series("baseten_m0") == []
    assert account.hits("max_label_value_length") == 3
    assert running.reconfigure(account.target("d1"))
    assert (
        scrape(poll(running)).value("baseten_m2", model_id="m1", deployment_id="d1", replica="r" * 40 + "0")
        == 1
    )


def test_a_reload_that_shortens_max_label_length_hides_names_read_under_the_old_one() -> None:
    """A deployment's names, read for its ``_info`` under the old limit, are held to the
    new one at once: not shown until a refresh reads names that fit."""
    account = discovery_account({"d1": "n" * 40})
    account.docs["d1"] = gauges(1, 1)
    running = account.target("d1", meta_refresh=300.0)
    assert names(scrape(poll(running))) == ["n" * 40]
    assert running.reconfigure(account.target("d1", meta_refresh=300.0, max_label_length=39))
    assert scrape(poll(running, NOW + 30)).series("baseten_deployment_info") == []
    after_refresh = scrape(poll(running, NOW + 400))  # the names read again: still too long
    assert after_refresh.series("baseten_deployment_info") == []
    assert after_refresh.series("baseten_deployment_status") == []
    assert account.hits("max_label_value_length") == 1
    account.docs["deployments/m1"]["deployments"][0]["name"] = "short"
    assert names(scrape(poll(running, NOW + 800))) == ["short"]


def names(scraped: Scrape) -> list[str]:
    """The deployment names the ``_info`` gauge shows."""
    return [labels["deployment_name"] for labels, _ in scraped.series("baseten_deployment_info")]


def test_too_long_label_names_values_and_metric_names_drop_their_series_and_are_counted() -> None:
    account = Account()
    long = "x" * 1025
    sets = [{"replica": "r1"}, {"replica": long}, {long: "r3"}, {"replica": "y" * 1024}]
    account.docs["d1"] = response(
        "CURRENT",
        [desc("baseten_a", sets=sets), desc("baseten_" + long, sets=[{}, {"replica": "r1"}])],
        [(0, [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0]])],
    )
    s = scrape(poll(account.target("d1")))
    assert [lb["replica"] for lb, _ in s.series("baseten_a")] == ["r1", "y" * 1024]
    assert s.value("baseten_a", model_id="m1", deployment_id="d1", replica="y" * 1024) == 4.0
    assert len(s.types) == 1
    assert account.hits("max_label_value_length") == 4
    # The limit is the account's.
    s = scrape(poll(account.target("d1", max_label_length=2000)))
    assert len(s.series("baseten_a")) == 4 and len(s.types) == 2


def test_counter_series_an_answer_no_longer_describes_are_forgotten() -> None:
    """Label values that change at every poll must not pile up in the running totals."""
    account = Account()
    polls = {"n": 0}

    def answer(request: httpx.Request) -> dict[str, Any]:
        n = polls["n"]
        start, end = (
            int(request.url.params["start_epoch_millis"]),
            int(request.url.params["end_epoch_millis"]),
        )
        sets = [{"replica": f"p{n}-{j}"} for j in range(50)]
        steps = [(t, [[1.0] * 50]) for t in range(start, end, 60_000)]
        return response(
            "SERIES",
            [desc("baseten_x_total", "COUNTER", "COUNT", sets)],
            steps,
            start=start,
            end=end,
            step=60,
        )

    account.docs["d1"] = answer
    target = account.target("d1", request=SERIES)
    for n in range(8):
        polls["n"] = n
        s = scrape(poll(target, NOW + 60 * n))
    assert len(s.series("baseten_x_total")) == 50
    assert len(target.state.counters.series) == 50


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_memory_stays_flat_over_sixty_polls_of_label_values_that_always_change() -> None:
    """Descriptor caches keyed by whole descriptors kept every poll's label sets (about
    9 MB a poll of 20,000, never freed): 5,000 a poll keep the test quick and would
    still add some 110 MB."""
    account = Account()
    polls = {"n": 0}
    account.docs["d1"] = lambda _: gauges(1, 5_000, value=f"p{polls['n']}-")
    target = account.target("d1")
    marks: list[float] = []
    for n in range(60):
        polls["n"] = n
        assert poll(target, NOW + 30 * n).data is not None
        if n in (9, 59):
            gc.collect()
            marks.append(rss_mb())
    assert abs(marks[1] - marks[0]) < 20, marks


def discovery_account(deployments: dict[str, str]) -> Account:
    """An account with one model whose deployments have the given ids and names."""
    account = Account()
    account.docs["models"] = {"models": [{"id": "m1", "name": "llama"}]}
    account.docs["deployments/m1"] = {
        "deployments": [
            {"id": i, "name": n, "status": "ACTIVE", "is_production": False, "environment": None}
            for i, n in deployments.items()
        ]
    }
    return account


def discovery(account: Account, max_targets: int) -> DeploymentDiscovery:
    settings = DeploymentDiscoverySettings(
        model_names=frozenset(),
        environments=frozenset(),
        production_only=False,
        skip_statuses=frozenset(),
        interval=60.0,
        timeout=5.0,
        deployments=DeploymentSettings(MODE, 30.0, 5.0),
        max_targets=max_targets,
    )
    return DeploymentDiscovery(account.api, 0, settings)


def test_a_discovery_past_max_targets_fails_and_finds_nothing() -> None:
    account = discovery_account({f"d{i}": f"n{i}" for i in range(4)})
    assert len(poll(discovery(account, 4)).found or []) == 4
    refused = poll(discovery(account, 3))
    assert refused.reason == "too_many_targets" and refused.found is None
    assert "found 4 deployments" in refused.detail and "max_targets (3)" in refused.detail
    assert account.hits("max_targets", "baseten_discovery") == 1


def test_deployments_with_too_long_ids_or_names_are_not_discovered() -> None:
    account = discovery_account({"d1": "ok", "d" * 1025: "ok", "d3": "n" * 1025})
    found = poll(discovery(account, 10)).found or []
    assert [t.id for t in found] == ["baseten/m1/d1"]
    assert account.hits("max_label_value_length", "baseten_discovery") == 2
