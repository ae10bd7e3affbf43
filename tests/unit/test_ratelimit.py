"""Reading Together's rate-limit headers, and the gauges that show the latest reading."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.core.selfmetrics import UpstreamStats
from exporter.upstream.ratelimit import RateLimitReading, read_rate_limit

NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    ("headers", "reading"),
    [
        (
            {"x-ratelimit-limit": "600", "x-ratelimit-remaining": "598", "x-ratelimit-reset": "42"},
            RateLimitReading(600.0, 598.0, NOW + 42),
        ),
        ({"X-RateLimit-Remaining": "3"}, RateLimitReading(None, 3.0, None)),  # case does not matter
        ({"x-ratelimit-reset": "4s"}, RateLimitReading(None, None, NOW + 4)),
        ({"x-ratelimit-reset": str(int(NOW) + 9)}, RateLimitReading(None, None, NOW + 9)),  # a Unix time
        ({"x-ratelimit-limit": "lots", "x-ratelimit-remaining": "-1"}, None),  # nothing usable
        (
            {"x-ratelimit-limit": "nan", "x-ratelimit-remaining": "inf", "x-ratelimit-reset": "1"},
            RateLimitReading(None, None, NOW + 1),
        ),
        ({"content-type": "application/json"}, None),
    ],
)
def test_reading_the_headers(headers: dict[str, str], reading: RateLimitReading | None) -> None:
    assert read_rate_limit(httpx.Headers(headers), NOW) == reading


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_the_latest_reading_per_account_and_endpoint_until_the_account_goes() -> None:
    registry = CollectorRegistry()
    prod = UpstreamStats(registry, account="prod")
    staging = prod.for_account("staging")
    prod.rate_limit("together", "together_queue", "/queue/metrics", 600, 598, NOW + 42)
    prod.rate_limit("together", "together_queue", "/queue/metrics", 600, 597, None)  # reset not sent
    staging.rate_limit("together", "together_finetune", "/fine-tunes/{id}", 100, 7, NOW + 3)
    text = exposition(registry)
    labels = 'account="prod",endpoint="/queue/metrics",source="together_queue"'
    assert f"inference_exporter_upstream_ratelimit_remaining{{{labels}}} 597.0" in text
    assert f"inference_exporter_upstream_ratelimit_limit{{{labels}}} 600.0" in text
    assert f"inference_exporter_upstream_ratelimit_reset_timestamp_seconds{{{labels}}} {NOW + 42:.9e}" in text
    assert 'account="staging",endpoint="/fine-tunes/{id}",source="together_finetune"} 7.0' in text

    prod.forget_rate_limits("baseten")  # another vendor's account of the same name: nothing to drop
    assert 'account="prod"' in exposition(registry)
    prod.forget_rate_limits("together")
    text = exposition(registry)
    assert 'account="prod"' not in text
    assert 'account="staging",endpoint="/fine-tunes/{id}",source="together_finetune"} 7.0' in text


def test_no_reading_no_series() -> None:
    registry = CollectorRegistry()
    UpstreamStats(registry, account="prod")
    text = exposition(registry)
    assert "# TYPE inference_exporter_upstream_ratelimit_remaining gauge" in text
    assert "inference_exporter_upstream_ratelimit_remaining{" not in text


def test_a_header_never_sent_has_no_series() -> None:
    registry = CollectorRegistry()
    stats = UpstreamStats(registry, account="prod")
    stats.rate_limit("together", "together_queue", "/queue/metrics", None, 5, None)
    text = exposition(registry)
    assert 'inference_exporter_upstream_ratelimit_remaining{account="prod"' in text
    assert "inference_exporter_upstream_ratelimit_limit{" not in text
    assert "inference_exporter_upstream_ratelimit_reset_timestamp_seconds{" not in text
