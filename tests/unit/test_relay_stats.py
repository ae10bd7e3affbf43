"""The relays' self-metrics, read from the relay targets when the registry is collected."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from exporter.core.scope import Scope
from exporter.sources.base import Target
from exporter.sources.relay.rules import RelayRules
from exporter.sources.relay.stats import RelayCollector
from exporter.sources.relay.target import RelaySettings, RelayTarget
from exporter.upstream.client import UpstreamStats
from tests.golden.relay import NATIVE_NAMESPACES
from tests.helpers import mock_clients, parse, promtool_check_metrics

# Two samples timestamped, one written twice, one in a native namespace, one with a
# label value past the relay's 64 characters.
BODY = (
    "# TYPE requests_total counter\n"
    'requests_total{code="200"} 7 1700000000000\n'
    'requests_total{code="200"} 8 1700000000000\n'
    'requests_total{code="500"} 1\n'
    "# TYPE together_queue_jobs_waiting gauge\n"
    "together_queue_jobs_waiting 3\n"
    f'long{{v="{"x" * 80}"}} 1\n'
)


def collected(targets: list[Target]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(lambda: targets))
    return generate_latest(registry).decode()


def test_no_relay_lists_every_family_without_series() -> None:
    text = collected([])
    assert promtool_check_metrics(text) == ""
    assert [line.split(" ")[2:] for line in text.splitlines() if line.startswith("# TYPE")] == [
        ["inference_exporter_relay_body_fetch_timestamp_seconds", "gauge"],
        ["inference_exporter_relay_stale_after_seconds", "gauge"],
        ["inference_exporter_relay_held_polls_total", "counter"],
        ["inference_exporter_relay_samples_left_out_total", "counter"],
        ["inference_exporter_relay_timestamps_dropped_total", "counter"],
    ]
    assert not [line for line in text.splitlines() if not line.startswith("#")]


def test_a_relays_body_age_holds_and_what_its_bodies_left_out() -> None:
    answers = [httpx.Response(200, text=BODY), httpx.Response(429, headers={"Retry-After": "600"})]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    async def run() -> RelayTarget:
        clients = mock_clients("together", handler, UpstreamStats())
        rules = RelayRules(reserved=NATIVE_NAMESPACES, max_label_length=64)
        settings = RelaySettings(
            "together", "dedicated", "https://x.test/metrics", 30, 5, 120, scope=Scope(), rules=rules
        )
        target = RelayTarget(clients, settings)
        await target.poll(1_700_000_000.0)
        await target.poll(1_700_000_030.0)
        return target

    target = asyncio.run(run())
    text = collected([target])
    assert promtool_check_metrics(text) == ""
    s = parse(text)
    ids = {"target": "together_relay/dedicated", "source": "together_relay", "account": "default"}
    assert s.value("inference_exporter_relay_body_fetch_timestamp_seconds", **ids) == 1_700_000_000.0
    assert s.value("inference_exporter_relay_stale_after_seconds", **ids) == 120
    assert s.value("inference_exporter_relay_held_polls_total", **ids) == 1
    assert s.value("inference_exporter_relay_timestamps_dropped_total", **ids) == 2
    left_out = {lbls["reason"]: v for lbls, v in s.series("inference_exporter_relay_samples_left_out_total")}
    assert left_out == {"duplicate": 1, "reserved_namespace": 1, "too_long": 1}
