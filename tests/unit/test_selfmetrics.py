"""The exporter's own metrics: prometheus_client instruments, one registry per exporter."""

from __future__ import annotations

import asyncio
import platform
from pathlib import Path

from exporter import __version__
from exporter.config import LoadedConfig
from exporter.config.model import Config
from exporter.core.selfmetrics import UpstreamStats
from exporter.core.sharding import Shard
from exporter.engine.daemon import Exporter
from tests.helpers import counts, parse


async def started(tmp_path: Path, shard: Shard | None = None) -> Exporter:
    exp = Exporter(tmp_path / "unused.yaml", shard)
    await exp.start(LoadedConfig(tmp_path, Config.model_validate({"global": {}})))
    return exp


def test_families_types_and_values(tmp_path: Path) -> None:
    async def go() -> str:
        exp = await started(tmp_path, Shard(2, 5))
        try:
            stats = exp.metrics.upstream
            stats.count("together_queue", "/queue/metrics", "200")
            stats.count("together_queue", "/queue/metrics", "200")
            stats.count("baseten", "/v1/models", "timeout")
            stats.retries.labels("baseten", "/v1/models", stats.account).inc()
            stats.budget_wait_seconds.labels("together", stats.account).inc(0.25)
            stats.budget_refusals.labels("together", stats.account).inc()
            return exp.metrics.render().decode()
        finally:
            await exp.stop()

    text = asyncio.run(go())
    s = parse(text)
    requests = "inference_exporter_upstream_requests_total"
    assert s.value(requests, source="together_queue", endpoint="/queue/metrics", code="200") == 2
    assert s.value(requests, source="baseten", endpoint="/v1/models", code="timeout") == 1
    assert s.value("inference_exporter_upstream_retries_total", source="baseten", endpoint="/v1/models") == 1
    assert s.value("inference_exporter_upstream_budget_wait_seconds_total", vendor="together") == 0.25
    assert s.value("inference_exporter_upstream_budget_refusals_total", vendor="together") == 1
    build = {"version": __version__, "python_version": platform.python_version()}
    assert s.value("inference_exporter_build_info", **build) == 1
    assert s.value("inference_exporter_config_last_reload_successful") == 1
    assert (s.value("inference_exporter_config_last_reload_success_timestamp_seconds") or 0) > 1e9
    assert (s.value("inference_exporter_asyncio_tasks") or 0) >= 1  # the test's own task at least
    assert s.value("inference_exporter_shard_ordinal") == 2
    assert s.value("inference_exporter_total_shards") == 5
    # Families keep the names and types they always had, and nothing is added next to them.
    for family, kind in [
        ("inference_exporter_upstream_requests_total", "counter"),
        ("inference_exporter_upstream_retries_total", "counter"),
        ("inference_exporter_upstream_budget_wait_seconds_total", "counter"),
        ("inference_exporter_upstream_budget_refusals_total", "counter"),
        ("inference_exporter_build_info", "gauge"),
        ("inference_exporter_config_last_reload_successful", "gauge"),
        ("inference_exporter_asyncio_tasks", "gauge"),
        ("inference_exporter_shard_targets", "gauge"),
    ]:
        assert f"# TYPE {family} {kind}\n" in text
    assert "_created" not in text


def test_each_exporter_counts_on_its_own(tmp_path: Path) -> None:
    async def go() -> tuple[str, str]:
        one, two = await started(tmp_path), await started(tmp_path)
        try:
            one.metrics.upstream.count("s", "/e", "200")
            one.metrics.reload_failed()
            return one.metrics.render().decode(), two.metrics.render().decode()
        finally:
            await one.stop()
            await two.stop()

    one, two = (parse(t) for t in asyncio.run(go()))
    requests = "inference_exporter_upstream_requests_total"
    assert one.value(requests, source="s", endpoint="/e", code="200") == 1
    assert two.value(requests, source="s", endpoint="/e", code="200") is None
    assert one.value("inference_exporter_config_last_reload_successful") == 0
    assert two.value("inference_exporter_config_last_reload_successful") == 1


def test_an_account_counts_into_its_own_series_of_the_same_counters() -> None:
    stats = UpstreamStats()
    staging = stats.for_account("staging")
    assert stats.for_account("default") is stats and staging.requests is stats.requests
    stats.count("s", "/e", "200")
    staging.count("s", "/e", "200")
    staging.count("s", "/e", "503")
    staging.limit_hit("s", "max_series_per_target", 3)
    assert counts(stats.requests) == {
        ("s", "/e", "200", "default"): 1,
        ("s", "/e", "200", "staging"): 1,
        ("s", "/e", "503", "staging"): 1,
    }
    assert counts(stats.limit_hits) == {("s", "max_series_per_target", "staging"): 3}
