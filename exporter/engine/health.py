"""Per-target health: up, poll duration, last success, polls by result, error reason.

Operators alert on these when the exporter itself is sick, so every target has them
from the first scrape, before its first poll has finished (``up`` is 0 until then).
They change with each poll, so they are rendered then and kept in the store next to
the target's data; the exporter's other metrics are in ``exporter.core.selfmetrics``.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from exporter.core.exposition import Family, Rendered, extra_parts, format_value, join_labels
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
_BY_NAME = {f.name: f for f in FAMILIES}


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


@functools.lru_cache(maxsize=1024)
def _scope_parts(scope: Scope) -> tuple[frozenset[str], str, tuple[Family, ...]]:
    """What the health lines of every target of ``scope`` share: the names and the text
    of its account and labels, and the health families its metric filter keeps."""
    keep = scope.filter.keeps_health if scope.filter.active else None
    kept = tuple(f for f in FAMILIES if keep is None or keep(f.name))
    return (*extra_parts(scope.extra), kept)


class HealthLines:
    """One target's health series as text.

    They are rendered after every poll of every target, and all but their values stay
    the same: the label sets (target, source, account and labels, a result or reason)
    and what the target's metric filter keeps are worked out once, and a poll formats
    only the values. The lines are those ``render`` makes of the same samples. There is
    one per target, so it holds strings and what its scope shares, which the garbage
    collector has next to nothing to walk through.
    """

    __slots__ = ("_id", "_labels", "_parts", "_reasons", "_results", "_source")

    def __init__(self, target_id: str, source: str, scope: Scope = DEFAULT_SCOPE) -> None:
        self._id = target_id
        self._source = source
        self._parts = _scope_parts(scope)
        self._labels = self._text()
        # Label sets with a result or a reason, by its value: a handful per target.
        self._results: dict[str, str] = {}
        self._reasons: dict[str, str] = {}

    def _text(self, *extra: tuple[str, str]) -> str:
        taken, tail, _ = self._parts
        return join_labels((("target", self._id), ("source", self._source), *extra), taken, tail)

    def _with_result(self, result: str) -> str:
        text = self._results.get(result)
        if text is None:
            text = self._results[result] = self._text(("result", result))
        return text

    def render(self, h: TargetHealth) -> Rendered:
        labels = self._labels
        polls = [
            f"{POLLS.name}{self._with_result('success')} {format_value(h.polls['success'])}\n",
            *(
                f"{POLLS.name}{self._with_result(result)} {format_value(n)}\n"
                for result, n in sorted(h.polls.items())
                if result != "success"
            ),
        ]
        lines = {
            TARGET_UP.name: f"{TARGET_UP.name}{labels} {1 if h.up else 0}\n",
            POLL_DURATION.name: f"{POLL_DURATION.name}{labels} {format_value(h.last_duration)}\n",
            LAST_SUCCESS.name: f"{LAST_SUCCESS.name}{labels} {format_value(h.last_success_timestamp)}\n",
            SERIES.name: f"{SERIES.name}{labels} {format_value(h.series)}\n",
            POLLS.name: "".join(polls),
        }
        if not h.up and h.last_error_reason:
            reason = h.last_error_reason
            text = self._reasons.get(reason)
            if text is None:
                text = self._reasons[reason] = self._text(("reason", reason))
            lines[ERROR_INFO.name] = f"{ERROR_INFO.name}{text} 1\n"
        kept = self._parts[2]
        out = {f.name: lines[f.name].encode() for f in kept if f.name in lines}
        filtered = sum(len(polls) if name == POLLS.name else 1 for name in lines if name not in out)
        return Rendered({name: _BY_NAME[name] for name in out}, out, filtered)


def render_health(target_id: str, source: str, h: TargetHealth, scope: Scope = DEFAULT_SCOPE) -> Rendered:
    """The target's health series, with its account and labels, less the health
    families its metric filter names (never ``target_up``)."""
    return HealthLines(target_id, source, scope).render(h)
