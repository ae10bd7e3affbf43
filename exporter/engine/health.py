"""Per-target health: up, poll duration, last success, polls by result, error reason.

Operators alert on these when the exporter itself is sick, so every target has them
from the first scrape, before its first poll has finished (``up`` is 0 until then).
They change with each poll, so they are rendered then and kept in the store next to
the target's data; the exporter's other metrics are in ``exporter.core.selfmetrics``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from exporter.core.exposition import Family, Labels, Rendered, Renderer, Sample
from exporter.core.scope import DEFAULT_SCOPE, Scope

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
# In the order a target's health samples come.
FAMILIES = (TARGET_UP, POLL_DURATION, LAST_SUCCESS, SERIES, POLLS, ERROR_INFO)


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


class HealthLines(Renderer):
    """One target's health series, rendered after each of its polls.

    All but their values stay the same from poll to poll: the label sets (target,
    source, account and labels, a result or reason) and what the target's metric
    filter keeps. So each target keeps its renderer, which remembers the text of the
    label sets and the filter's verdicts, and a poll formats only the values.
    """

    __slots__ = ("_labels",)

    def __init__(self, target_id: str, source: str, scope: Scope = DEFAULT_SCOPE) -> None:
        # The health families the target's metric filter names go (never target_up).
        super().__init__(scope.extra, scope.filter.keeps_health if scope.filter.active else None)
        self._labels: Labels = (("target", target_id), ("source", source))

    def render_health(self, h: TargetHealth) -> Rendered:
        labels = self._labels
        samples = [
            Sample(TARGET_UP, labels, 1 if h.up else 0),
            Sample(POLL_DURATION, labels, h.last_duration),
            Sample(LAST_SUCCESS, labels, h.last_success_timestamp),
            Sample(SERIES, labels, h.series),
            Sample(POLLS, (*labels, ("result", "success")), h.polls["success"]),
        ]
        for result, n in sorted(h.polls.items()):
            if result != "success":
                samples.append(Sample(POLLS, (*labels, ("result", result)), n))
        if not h.up and h.last_error_reason:
            samples.append(Sample(ERROR_INFO, (*labels, ("reason", h.last_error_reason)), 1))
        return self.render(samples)
