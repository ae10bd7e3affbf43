"""Per-target health and the exporter's own metrics.

Operators alert on these when the exporter itself is sick, so every target has them
from the first scrape, before its first poll has finished (``up`` is 0 until then).
"""

from __future__ import annotations

import platform
from collections import Counter
from dataclasses import dataclass, field

from exporter import __version__
from exporter.exposition import Family, Rendered, Sample, render
from exporter.upstream import UpstreamStats

TARGET_UP = Family(
    "inference_exporter_target_up", "gauge", "1 if the last poll of the target succeeded, else 0."
)
POLL_DURATION = Family(
    "inference_exporter_target_poll_duration_seconds", "gauge", "Wall time of the target's last poll."
)
LAST_SUCCESS = Family(
    "inference_exporter_target_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the target's last successful poll; 0 until one has succeeded.",
)
POLLS = Family(
    "inference_exporter_target_polls_total",
    "counter",
    "Polls of the target by result: success, or the reason the poll failed.",
)
ERROR_INFO = Family(
    "inference_exporter_target_error_info",
    "gauge",
    "Present with value 1 while the target is down; reason says why its last poll failed.",
)
SERIES = Family(
    "inference_exporter_target_series",
    "gauge",
    "Series the target currently contributes to the exposition (its own health series excluded).",
)
UPSTREAM_REQUESTS = Family(
    "inference_exporter_upstream_requests_total",
    "counter",
    "Requests sent to vendor APIs by source, endpoint template and HTTP status (or timeout/error).",
)
UPSTREAM_RETRIES = Family(
    "inference_exporter_upstream_retries_total",
    "counter",
    "Vendor requests retried after a timeout, connection error, 5xx or 429, by source and endpoint template.",
)
BUDGET_WAIT = Family(
    "inference_exporter_upstream_budget_wait_seconds_total",
    "counter",
    "Seconds requests spent waiting for a slot in the vendor's request budget (requests_per_second).",
)
BUDGET_REFUSALS = Family(
    "inference_exporter_upstream_budget_refusals_total",
    "counter",
    "Requests not sent because the vendor's request budget had no slot before the poll's deadline.",
)
ASYNCIO_TASKS = Family(
    "inference_exporter_asyncio_tasks",
    "gauge",
    "Asyncio tasks alive in the exporter process; steady in a healthy daemon.",
)
RELOAD_OK = Family(
    "inference_exporter_config_last_reload_successful",
    "gauge",
    "1 if the last config load or reload succeeded, else 0.",
)
RELOAD_TS = Family(
    "inference_exporter_config_last_reload_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful config load or reload.",
)
BUILD_INFO = Family("inference_exporter_build_info", "gauge", "Build metadata; value is always 1.")


@dataclass
class TargetHealth:
    """Mutable health of one target, owned by the poll loop."""

    up: bool = False
    polled: bool = False
    last_poll_timestamp: float = 0.0
    last_duration: float = 0.0
    last_success_timestamp: float = 0.0
    last_error_reason: str = ""
    last_error_detail: str = ""
    series: int = 0
    polls: Counter[str] = field(default_factory=Counter)

    def record_success(self, now: float, duration: float, series: int) -> None:
        self.up = True
        self.polled = True
        self.last_poll_timestamp = now
        self.last_duration = duration
        self.last_success_timestamp = now
        self.last_error_reason = ""
        self.last_error_detail = ""
        self.series = series
        self.polls["success"] += 1

    def record_failure(self, now: float, duration: float, reason: str, detail: str) -> None:
        self.up = False
        self.polled = True
        self.last_poll_timestamp = now
        self.last_duration = duration
        self.last_error_reason = reason
        self.last_error_detail = detail
        self.polls[reason] += 1


def render_health(target_id: str, source: str, h: TargetHealth) -> Rendered:
    labels = (("target", target_id), ("source", source))
    samples = [
        Sample(TARGET_UP, labels, 1.0 if h.up else 0.0),
        Sample(POLL_DURATION, labels, h.last_duration),
        Sample(LAST_SUCCESS, labels, h.last_success_timestamp),
        Sample(SERIES, labels, float(h.series)),
        Sample(POLLS, (*labels, ("result", "success")), float(h.polls["success"])),
    ]
    samples.extend(
        Sample(POLLS, (*labels, ("result", result)), float(n))
        for result, n in sorted(h.polls.items())
        if result != "success"
    )
    if not h.up and h.last_error_reason:
        samples.append(Sample(ERROR_INFO, (*labels, ("reason", h.last_error_reason)), 1.0))
    return render(samples)


@dataclass
class ReloadState:
    successful: bool = False
    last_success_timestamp: float = 0.0


def render_global(stats: UpstreamStats, reload: ReloadState, tasks: int) -> Rendered:
    samples = [
        Sample(BUILD_INFO, (("version", __version__), ("python_version", platform.python_version())), 1.0),
        Sample(RELOAD_OK, (), 1.0 if reload.successful else 0.0),
        Sample(RELOAD_TS, (), reload.last_success_timestamp),
        Sample(ASYNCIO_TASKS, (), float(tasks)),
    ]
    samples.extend(
        Sample(UPSTREAM_RETRIES, (("source", s), ("endpoint", e)), float(n))
        for (s, e), n in sorted(stats.retries.items())
    )
    samples.extend(
        Sample(BUDGET_WAIT, (("vendor", v),), w) for v, w in sorted(stats.budget_wait_seconds.items())
    )
    samples.extend(
        Sample(BUDGET_REFUSALS, (("vendor", v),), float(n)) for v, n in sorted(stats.budget_refusals.items())
    )
    samples.extend(
        Sample(UPSTREAM_REQUESTS, (("source", s), ("endpoint", e), ("code", c)), float(n))
        for (s, e, c), n in sorted(stats.requests.items())
    )
    return render(samples)
