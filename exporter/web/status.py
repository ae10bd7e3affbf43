"""The ``/targets`` status page: every target's health as an HTML table or as JSON.

What an operator opens first when a target is down: which one, since when, and
why. Error details are scrubbed of API keys before they are stored; the page
(``exporter.web.pages.targets``) escapes everything, since details can carry vendor text.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from exporter.engine.health import TargetHealth
from exporter.sources.base import Target
from exporter.web.pages import targets as targets_page
from exporter.web.pages.targets import STATES, TargetsQuery, select


def _iso(ts: float) -> str:
    if ts <= 0:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _health(t: Target, h: TargetHealth) -> str:
    if t.finished_at is not None:
        return "finished"
    if not h.polled:
        return "unknown"
    return "up" if h.up else "down"


def rows(targets: Iterable[tuple[Target, TargetHealth]], now: float | None = None) -> list[dict[str, Any]]:
    """One row per target, in the order given, as the JSON view serves them.

    A finished target (a fine-tune job that reached a terminal status) has health
    ``finished`` and no schedule: ``kept_until_timestamp`` says when its series go, and
    ``retired`` is true once they have (it is polled no more).
    """
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    for t, h in targets:
        kept_until = t.kept_until()
        out.append(
            {
                "id": t.id,
                "account": t.account,
                "source": t.source,
                "labels": dict(t.scope.labels),
                "health": _health(t, h),
                "interval_seconds": None if t.finished_at is not None else t.interval,
                "finished_timestamp": t.finished_at,
                "kept_until_timestamp": kept_until,
                "retired": kept_until is not None and now > kept_until,
                "last_poll": _iso(h.last_poll_timestamp) or None,
                "last_poll_timestamp": h.last_poll_timestamp or None,
                "last_poll_duration_seconds": h.last_duration if h.polled else None,
                "last_success_timestamp": h.last_success_timestamp or None,
                "series": h.series,
                "filtered_series": h.filtered,
                "last_error": h.last_error_reason or None,
                "last_error_detail": h.last_error_detail or None,
            }
        )
    return out


def health_counts(data: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many rows are up, down, unknown (not polled yet) and finished."""
    counts = Counter(r["health"] for r in data)
    return {state: counts.get(state, 0) for state in STATES}


# Rows built between two chances to pause (see ``exporter.web.pagecache``).
ROWS_PER_STEP = 25


def rows_in_steps(
    targets: Sequence[tuple[Target, TargetHealth]], into: list[dict[str, Any]]
) -> Iterator[str]:
    """``rows(targets)``, appended to ``into`` a few at a time, with an empty piece of
    text between batches: a chance for whoever renders a page in steps to pause."""
    for start in range(0, len(targets), ROWS_PER_STEP):
        into += rows(targets[start : start + ROWS_PER_STEP])
        yield ""


def stream_html(
    targets: Sequence[tuple[Target, TargetHealth]], query: TargetsQuery, telemetry_path: str
) -> Iterator[str]:
    """The targets page for these targets, now, as pieces of text (see ``exporter.web.pages.targets``)."""
    data: list[dict[str, Any]] = []
    yield from rows_in_steps(targets, data)
    yield from targets_page.stream(data, time.time(), query, telemetry_path)


def stream_json(targets: Sequence[tuple[Target, TargetHealth]], query: TargetsQuery) -> Iterator[str]:
    """``{"targets": [row, …]}`` with the rows the query selects, as pieces of text (the
    text ``json.dumps`` makes of it)."""
    data: list[dict[str, Any]] = []
    yield from rows_in_steps(targets, data)
    yield '{"targets": ['
    for i, row in enumerate(select(data, query.state, query.account)):
        yield (", " if i else "") + json.dumps(row)
    yield "]}"
