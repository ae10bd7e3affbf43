"""A Baseten deployment's poll as pure functions: the reads it asks for and the state it returns."""

from __future__ import annotations

from typing import Any

from exporter.core.scope import FilterRule, MetricFilter
from exporter.sources.baseten import deployment as dp
from exporter.sources.baseten.config import Effective
from exporter.sources.baseten.lists import Meta
from exporter.sources.baseten.translate import Response, parse
from tests.unit.baseten_docs import IDS, STATUS_SETS, desc, response

NOW = 1_700_000_130.0  # 30 s past a minute boundary
COUNTER = desc("baseten_inference_requests_total", "COUNTER", "COUNT", STATUS_SETS)
GAUGE = desc("baseten_replicas_active")


def request(**kw: Any) -> Effective:
    base: dict[str, Any] = {"mode": "CURRENT", "metrics": (), "window": 600.0, "counter_window": 300.0}
    return Effective(**{**base, "delay": 120.0, **kw})


def current(replicas: float = 2.0) -> Response:
    return parse(response("CURRENT", [GAUGE, COUNTER], [(0, [[replicas], [0, 0, 0]])]), "CURRENT")


def series(query: dp.Query, per_step: float = 4.0) -> Response:
    assert query.start_ms is not None and query.end_ms is not None
    steps = range(query.start_ms, query.end_ms, 60_000)
    doc = response(
        "SERIES",
        [COUNTER],
        [(t, [[per_step, 1.0, None]]) for t in steps],
        start=query.start_ms,
        end=query.end_ms,
        step=60,
    )
    return parse(doc, "SERIES")


def poll(state: dp.State, d: dp.Deployment, now: float) -> tuple[dp.State, dict[str, float]]:
    """One poll as a target runs it, answered by the fakes above."""
    main_query = dp.main_query(state, d, now)
    main = current() if main_query is not None else None
    counters_query = dp.counters_query(state, d, main, now)
    counters = series(counters_query) if counters_query is not None else None
    new, samples = dp.advance(state, d, dp.Answers(main, counters, counters_query), now)
    return new, {f"{s.family.name}{dict(s.labels).get('status', '')}": s.value for s in samples}


def test_current_mode_reads_counters_once_per_step_and_adds_each_step_once() -> None:
    d = dp.Deployment(IDS, request())
    state = dp.State()
    assert dp.main_query(state, d, NOW) == dp.Query("CURRENT")
    state, values = poll(state, d, NOW)
    assert values["baseten_replicas_active"] == 2 and values["baseten_inference_requests_total2xx"] == 0
    read = state.counters_read
    assert read is not None and read.end_ms is not None
    assert read.mode == "SERIES" and read.metrics == ("baseten_inference_requests_total",)
    # Within the same minute of now - delay: the window has not moved, it is not read.
    assert dp.counters_query(state, d, current(), NOW + 20) is None
    # A minute on: one more settled step, counted once.
    moved = dp.counters_query(state, d, current(), NOW + 60)
    assert moved is not None and moved.end_ms == read.end_ms + 60_000
    state, values = poll(state, d, NOW + 60)
    assert values["baseten_inference_requests_total2xx"] == 4


def test_advance_returns_a_new_state_and_leaves_the_one_it_was_given() -> None:
    d = dp.Deployment(IDS, request())
    first, _ = poll(dp.State(), d, NOW)
    kept = (first.counters, first.counters_read, dict(first.counters.series))
    second, _ = poll(first, d, NOW + 60)
    assert second.counters is not first.counters
    assert (first.counters, first.counters_read, dict(first.counters.series)) == kept
    # A poll that read no counters keeps the read it remembers, and the same totals.
    third, _ = dp.advance(second, d, dp.Answers(current()), NOW + 70)
    assert third.counters is second.counters and third.counters_read == second.counters_read


def test_series_mode_reads_once_and_learns_the_vendors_step() -> None:
    d = dp.Deployment(IDS, request(mode="SERIES", window=3600.0))
    query = dp.main_query(dp.State(), d, NOW)
    assert query is not None and query.mode == "SERIES"
    doc = response("SERIES", [COUNTER], [(query.start_ms or 0, [[1.0, 1.0, 1.0]])], start=0, end=0, step=300)
    main = parse(doc, "SERIES")
    assert dp.counters_query(dp.State(), d, main, NOW) is None
    state, _ = dp.advance(dp.State(), d, dp.Answers(main), NOW)
    assert state.step == 300 and state.counter_step == dp.DEFAULT_STEP_SECONDS


def test_the_filter_chooses_what_to_ask_and_learns_where_metrics_land() -> None:
    deny = MetricFilter((FilterRule(deny=("baseten_inference_.*",)),))
    d = dp.Deployment(IDS, request(), deny)
    # The vendor's default set, named, less the counter every family of which is denied.
    query = dp.main_query(dp.State(), d, NOW)
    assert query is not None
    assert query.metrics == ("baseten_replicas_active", "baseten_end_to_end_response_time_seconds")
    assert dp.counters_query(dp.State(), d, current(), NOW) is None
    state, values = poll(dp.State(), d, NOW)
    assert "baseten_inference_requests_total2xx" not in values
    assert state.families["baseten_replicas_active"] == {"baseten_replicas_active"}
    nothing = dp.Deployment(IDS, request(), MetricFilter((FilterRule(allow=("together_.*",)),)))
    assert dp.main_query(dp.State(), nothing, NOW) is None
    assert dp.advance(dp.State(), nothing, dp.Answers(), NOW)[1] == []


def test_metadata_adds_info_and_status() -> None:
    d = dp.Deployment(IDS, request(), meta=Meta("llama", "v1", "production", "ACTIVE", True))
    _, values = poll(dp.State(), d, NOW)
    assert values["baseten_deployment_info"] == 1
