"""What the relay's integration tests share: the simulator's key, its endpoints read
directly, a relayed scrape's series, and the relays' self-metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Proc, Scrape, start_simulator

KEY = "relay-key-5e0c91"
ENV = {"RELAY_KEY": KEY}
ORG_TARGET = "baseten_relay@prod/organisation"
ORG_SOURCE = "baseten_relay"
DEDICATED = "/v1/dedicated-endpoints/metrics"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def simulator(tmp_path: Path) -> Iterator[Proc]:
    """The simulator, whose default organisation answers to ``KEY`` (a fixture's body)."""
    proc = start_simulator(tmp_path, [KEY])
    yield proc
    proc.stop()


def set_limit(sim: Proc, route: str, limit: int) -> None:
    """The requests a minute the simulator's ``route`` (``baseten/org-metrics`` or
    ``dedicated-endpoints``) answers for the default organisation."""
    httpx.post(f"{sim.url}/_sim/{route}", json={"limit": limit}, timeout=5).raise_for_status()


def direct(sim: Proc, path: str, scheme: str) -> str:
    """The simulator's endpoint as a scraper of it reads it."""
    resp = httpx.get(sim.url + path, headers={"Authorization": f"{scheme} {KEY}"}, timeout=10)
    resp.raise_for_status()
    return resp.text


def vendor_series(
    text: str, rename: Callable[[str], str], labels: Callable[[dict[str, str]], dict[str, str]]
) -> Series:
    """Every sample of a vendor body, named and labelled as its relay should serve it."""
    return {
        (rename(s.name), frozenset(labels(dict(s.labels)).items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def relayed(s: Scrape, prefix: str) -> Series:
    """The scrape's series whose names start with ``prefix``."""
    return {key: v for key, v in s.samples.items() if key[0].startswith(prefix)}


def targets(daemon: Proc) -> dict[str, dict[str, object]]:
    resp = httpx.get(daemon.url + "/targets", params={"format": "json"}, timeout=5)
    return {str(t["id"]): t for t in resp.json()["targets"]}


def relay_value(s: Scrape, name: str, target: str, **labels: str) -> float | None:
    """A relay self-metric of ``target`` (its account is the one in its id)."""
    account = target.partition("@")[2].partition("/")[0] or "default"
    source = target.partition("@")[0].partition("/")[0]
    return s.value(
        f"inference_exporter_relay_{name}", target=target, source=source, account=account, **labels
    )
