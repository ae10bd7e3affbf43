"""Per-target health: up, poll duration, last success, polls by result, error reason.

Operators alert on these when the exporter itself is sick, so every target has them
from the first scrape, before its first poll has finished (``up`` is 0 until then).
They change with each poll, so they are rendered then and kept in the store next to
the target's data; the exporter's other metrics are in ``exporter.selfmetrics``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from exporter.exposition import Family, Rendered, Sample
from exporter.scope import DEFAULT_SCOPE, Scope

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
    # Series the target's metric filter removed from its last successful poll.
    filtered: int = 0
    polls: Counter[str] = field(default_factory=Counter)

    def record_success(self, now: float, duration: float, series: int, filtered: int = 0) -> None:
        self.up = True
        self.polled = True
        self.last_poll_timestamp = now
        self.last_duration = duration
        self.last_success_timestamp = now
        self.last_error_reason = ""
        self.last_error_detail = ""
        self.series = series
        self.filtered = filtered
        self.polls["success"] += 1

    def record_failure(self, now: float, duration: float, reason: str, detail: str) -> None:
        self.up = False
        self.polled = True
        self.last_poll_timestamp = now
        self.last_duration = duration
        self.last_error_reason = reason
        self.last_error_detail = detail
        self.polls[reason] += 1


def render_health(target_id: str, source: str, h: TargetHealth, scope: Scope = DEFAULT_SCOPE) -> Rendered:
    """The target's health series, with its account and labels, less the health
    families its metric filter names (never ``target_up``)."""
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
    return scope.render_health(samples)
