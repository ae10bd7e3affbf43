"""The exporter's own metrics, as prometheus_client instruments in one registry per exporter.

What happens in the exporter is counted when it happens (upstream requests, retries,
budget waits and refusals, config reloads); what is a state of the process is read
when scraped (asyncio tasks, targets of this shard, process and GC statistics). Each
``Exporter`` has its own registry, never client_python's global one, so several
exporters can live in one process (tests do) without sharing or clashing.

Per-target health is not here: it changes with each poll, so it is rendered then and
kept in the store with the target's data (see ``exporter.engine.health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.core.scope import DEFAULT_ACCOUNT
from exporter.core.sharding import Shard


class UpstreamStats:
    """Requests sent to the vendors, retries, waits and refusals of the request budgets, and
    vendor answers that went past a limit: prometheus_client counters, counted where it happens.

    Every series ends with the vendor account it was counted for (the ``account``
    label). One ``UpstreamStats`` counts for one account, ``account``; ``for_account``
    gives another account's view of the same counters, which is what each account's
    client is handed. Where the count is taken, the series is
    ``stats.retries.labels(source, endpoint, stats.account)``.

    Without a registry the counters are kept but served nowhere (tests of the request
    path read them directly).
    """

    requests: Counter
    retries: Counter
    budget_wait_seconds: Counter
    budget_refusals: Counter
    limit_hits: Counter
    _rate_limit: RateLimitGauges

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        account: str = DEFAULT_ACCOUNT,
        _shared: UpstreamStats | None = None,
    ) -> None:
        self.account = account
        if _shared is not None:
            self.requests = _shared.requests
            self.retries = _shared.retries
            self.budget_wait_seconds = _shared.budget_wait_seconds
            self.budget_refusals = _shared.budget_refusals
            self.limit_hits = _shared.limit_hits
            self._rate_limit = _shared._rate_limit
        else:
            self.requests = Counter(
                "inference_exporter_upstream_requests_total",
                "Requests sent to vendor APIs by source, endpoint template, HTTP status (or timeout/error) "
                "and account.",
                ("source", "endpoint", "code", "account"),
                registry=registry,
            )
            self.retries = Counter(
                "inference_exporter_upstream_retries_total",
                "Vendor requests retried after a timeout, connection error, 5xx or 429, "
                "by source, endpoint template and account.",
                ("source", "endpoint", "account"),
                registry=registry,
            )
            self.budget_wait_seconds = Counter(
                "inference_exporter_upstream_budget_wait_seconds_total",
                "Seconds requests spent waiting for a slot in the account's request budget "
                "(requests_per_second).",
                ("vendor", "account"),
                registry=registry,
            )
            self.budget_refusals = Counter(
                "inference_exporter_upstream_budget_refusals_total",
                "Requests not sent because the account's request budget had no slot before the poll's "
                "deadline.",
                ("vendor", "account"),
                registry=registry,
            )
            self._rate_limit = RateLimitGauges(registry)
            self.limit_hits = Counter(
                "inference_exporter_limit_hits_total",
                "Times a vendor answer went past a limit, by source, the limit's config key and account: "
                "a poll refused for it counts 1, each series, key or listed object dropped for it counts 1.",
                ("source", "limit", "account"),
                registry=registry,
            )
        # Every request is counted: its series is looked up here rather than through
        # labels(), which checks the values and takes the metric's lock on each call.
        self._request_series: dict[tuple[str, str, str], Counter] = {}

    def for_account(self, account: str) -> UpstreamStats:
        """The same counters, counting for ``account``."""
        if account == self.account:
            return self
        return UpstreamStats(account=account, _shared=self)

    def limit_hit(self, source: str, limit: str, n: int = 1) -> None:
        """A limit bit ``n`` times in a poll of a ``source`` target (see ``exporter.core.errors.LimitExceeded``)."""
        self.limit_hits.labels(source, limit, self.account).inc(n)

    def rate_limit(
        self,
        vendor: str,
        source: str,
        endpoint: str,
        limit: float | None,
        remaining: float | None,
        reset_timestamp: float | None,
    ) -> None:
        """The vendor's latest rate-limit reading for a request (see ``exporter.upstream.ratelimit``)."""
        self._rate_limit.set(vendor, (source, endpoint, self.account), (limit, remaining, reset_timestamp))

    def forget_rate_limits(self, vendor: str) -> None:
        """Drop this account's readings from ``vendor``: the account is gone from the config."""
        self._rate_limit.forget(vendor, self.account)

    def count(self, source: str, endpoint: str, code: str) -> None:
        """One request sent, by source, endpoint template and status (or timeout/error)."""
        key = (source, endpoint, code)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = self.requests.labels(*key, self.account)
        series.inc()


class RateLimitGauges:
    """The latest ``x-ratelimit-*`` values per source, endpoint and account.

    A series exists once the vendor has sent the header for that request, and goes when
    the account leaves the config; a header missing from a later answer leaves the last
    value, as the vendor said it.
    """

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ("source", "endpoint", "account")
        self._gauges = (
            Gauge(
                "inference_exporter_upstream_ratelimit_limit",
                "Requests the vendor's rate-limit window allows (x-ratelimit-limit), as last answered.",
                labels,
                registry=registry,
            ),
            Gauge(
                "inference_exporter_upstream_ratelimit_remaining",
                "Requests left in the vendor's rate-limit window (x-ratelimit-remaining), as last answered.",
                labels,
                registry=registry,
            ),
            Gauge(
                "inference_exporter_upstream_ratelimit_reset_timestamp_seconds",
                "When the vendor's rate-limit window starts over (from x-ratelimit-reset), as last answered.",
                labels,
                registry=registry,
            ),
        )
        # Each reading's series, by (vendor, account) and then (source, endpoint, account):
        # looked up here rather than through labels() on every answer that carries the headers.
        # A series only once the vendor sent its header: no made-up zeros for the others.
        self._series: dict[tuple[str, str], dict[tuple[str, str, str], list[Gauge | None]]] = {}

    def set(self, vendor: str, key: tuple[str, str, str], values: tuple[float | None, ...]) -> None:
        seen = self._series.setdefault((vendor, key[2]), {})
        series = seen.get(key)
        if series is None:
            series = seen[key] = [None] * len(self._gauges)
        for i, value in enumerate(values):
            if value is None:
                continue
            child = series[i]
            if child is None:
                child = series[i] = self._gauges[i].labels(*key)
            child.set(value)

    def forget(self, vendor: str, account: str) -> None:
        for key in self._series.pop((vendor, account), {}):
            for gauge in self._gauges:
                with contextlib.suppress(KeyError):
                    gauge.remove(*key)


def _asyncio_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # no event loop running: read outside the daemon
        return 0.0


class SelfMetrics:
    """One exporter's registry: its own metrics next to the process and Python runtime's."""

    def __init__(self, shard: Shard, target_count: Callable[[], int]) -> None:
        # client_python adds a ``_created`` series to every counter, which the text format
        # shows as one more gauge family per counter; this exposition never had them.
        # The switch is process-wide in client_python (read on every collect), and the
        # only prometheus_client metrics in an exporter's process are its own.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        Info("inference_exporter_build", "Build metadata; value is always 1.", registry=registry).info(
            {"version": __version__, "python_version": platform.python_version()}
        )
        self._reload_ok = Gauge(
            "inference_exporter_config_last_reload_successful",
            "1 if the last config load or reload succeeded, else 0.",
            registry=registry,
        )
        self._reload_ts = Gauge(
            "inference_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load or reload.",
            registry=registry,
        )
        Gauge(
            "inference_exporter_asyncio_tasks",
            "Asyncio tasks alive in the exporter process; steady in a healthy daemon.",
            registry=registry,
        ).set_function(_asyncio_tasks)
        Gauge(
            "inference_exporter_shard_ordinal",
            "This replica's shard number, from 0 (--shard, or the ordinal of its StatefulSet pod name).",
            registry=registry,
        ).set(shard.index)
        Gauge(
            "inference_exporter_total_shards",
            "Number of shards the targets are split into (--total-shards); 1 when not sharded.",
            registry=registry,
        ).set(shard.total)
        Gauge(
            "inference_exporter_shard_targets",
            "Targets this shard polls (its share of the config's and discovered targets, "
            "discoveries included).",
            registry=registry,
        ).set_function(lambda: float(target_count()))
        self.upstream = UpstreamStats(registry)

    def reload_succeeded(self, now: float) -> None:
        self._reload_ok.set(1)
        self._reload_ts.set(now)

    def reload_failed(self) -> None:
        self._reload_ok.set(0)

    def render(self) -> bytes:
        """The registry in the text format, rendered for each scrape (a few dozen series)."""
        return generate_latest(self.registry)
