"""Per-step COUNTER values → running counters: every settled step added exactly once."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources.baseten.deployment import Counters, count_steps, counter_samples, window_bounds
from exporter.sources.baseten.translate import parse
from tests.unit.baseten_docs import IDS, STATUS_SETS, desc, response

STEP = 60_000
REQ = "baseten_inference_requests_total"


def series_doc(steps: Mapping[int, Sequence[float | None]], start: int, end: int, **kw: Any) -> Any:
    """A SERIES response over [start, end) on a 60 s grid; ``steps`` maps start → values."""
    descriptors = [desc(REQ, "COUNTER", "COUNT", STATUS_SETS)]
    value_sets = [(t, [steps.get(t, [0, 0, 0])]) for t in range(start, end, STEP)]
    return response("SERIES", descriptors, value_sets, start=start, end=end, step=60, **kw)


def totals(state: Counters) -> dict[str, float]:
    return {dict(s.labels)["status"]: s.value for s in counter_samples(state, IDS)}


def test_first_window_is_the_baseline_then_each_new_step_adds_once() -> None:
    state = Counters()
    data = {t: [10.0, 1.0, 0.0] for t in range(0, 20 * STEP, STEP)}
    state = count_steps(state, parse(series_doc(data, 0, 5 * STEP), "SERIES"), 5 * STEP)
    assert totals(state) == {"2xx": 0, "4xx": 0, "5xx": 0}
    assert all(s.family.type == "counter" for s in counter_samples(state, IDS))
    # The next window overlaps the first by four steps: only the new one is added.
    state = count_steps(state, parse(series_doc(data, STEP, 6 * STEP), "SERIES"), 6 * STEP)
    assert totals(state) == {"2xx": 10, "4xx": 1, "5xx": 0}
    # The same window again (a repeated poll) adds nothing.
    state = count_steps(state, parse(series_doc(data, STEP, 6 * STEP), "SERIES"), 6 * STEP)
    assert totals(state) == {"2xx": 10, "4xx": 1, "5xx": 0}
    # A poll after a gap of three steps adds the three it has not seen.
    state = count_steps(state, parse(series_doc(data, 4 * STEP, 9 * STEP), "SERIES"), 9 * STEP)
    assert totals(state) == {"2xx": 40, "4xx": 4, "5xx": 0}


def test_steps_past_the_cutoff_and_partial_steps_wait_until_settled() -> None:
    state = Counters()
    data = {t: [5.0, 0.0, 0.0] for t in range(0, 20 * STEP, STEP)}
    state = count_steps(state, parse(series_doc(data, 0, 3 * STEP), "SERIES"), 3 * STEP)
    # Lagging: the vendor reads 0 for steps not yet ingested; they end after the cutoff.
    lagging = {**data, 3 * STEP: [0.0, 0.0, 0.0], 4 * STEP: [0.0, 0.0, 0.0]}
    state = count_steps(state, parse(series_doc(lagging, 0, 5 * STEP), "SERIES"), 3 * STEP + 1)
    assert totals(state)["2xx"] == 0
    # A window ending mid-step: the last step is partial and not read yet.
    doc = series_doc(data, 0, 4 * STEP + STEP // 2)
    state = count_steps(state, parse(doc, "SERIES"), 10 * STEP)
    assert totals(state)["2xx"] == 5
    state = count_steps(state, parse(series_doc(data, 0, 5 * STEP), "SERIES"), 5 * STEP)
    assert totals(state)["2xx"] == 10


def test_null_adds_nothing_and_a_late_fill_is_still_counted_once() -> None:
    state = Counters()
    data: dict[int, list[float | None]] = {t: [1.0, 0.0, None] for t in range(0, 10 * STEP, STEP)}
    state = count_steps(state, parse(series_doc(data, 0, 2 * STEP), "SERIES"), 2 * STEP)
    # 5xx had only nulls in the baseline window: no series for it (null is no data).
    assert set(totals(state)) == {"2xx", "4xx"}
    data[2 * STEP] = [None, None, None]
    state = count_steps(state, parse(series_doc(data, 0, 3 * STEP), "SERIES"), 3 * STEP)
    assert totals(state)["2xx"] == 0
    data[2 * STEP] = [7.0, 0.0, 2.0]  # filled in late
    state = count_steps(state, parse(series_doc(data, 0, 3 * STEP), "SERIES"), 3 * STEP)
    assert totals(state) == {"2xx": 7, "4xx": 0, "5xx": 2}
    state = count_steps(state, parse(series_doc(data, STEP, 4 * STEP), "SERIES"), 4 * STEP)
    assert totals(state) == {"2xx": 8, "4xx": 0, "5xx": 2}


def test_a_shifted_step_grid_never_counts_time_twice() -> None:
    state = Counters()
    grid = {t: [6.0, 0.0, 0.0] for t in range(0, 10 * STEP, STEP)}
    state = count_steps(state, parse(series_doc(grid, 0, 3 * STEP), "SERIES"), 3 * STEP)
    state = count_steps(state, parse(series_doc(grid, 0, 4 * STEP), "SERIES"), 4 * STEP)
    assert totals(state)["2xx"] == 6
    # Steps now start 30 s off the old grid: the one straddling counted time is skipped.
    half = STEP // 2
    shifted = {t: [6.0, 0.0, 0.0] for t in range(half, 10 * STEP, STEP)}
    state = count_steps(
        state, parse(series_doc(shifted, 3 * STEP + half, 6 * STEP + half), "SERIES"), 10 * STEP
    )
    assert totals(state)["2xx"] == 6 + 2 * 6


def test_negative_and_non_finite_steps_are_not_increments() -> None:
    state = Counters()
    data: dict[int, list[float | None]] = {t: [1.0, 1.0, 1.0] for t in range(0, 10 * STEP, STEP)}
    state = count_steps(state, parse(series_doc(data, 0, STEP), "SERIES"), STEP)
    data[STEP] = [-5.0, math.nan, math.inf]
    data[2 * STEP] = [2.0, 2.0, 2.0]
    state = count_steps(state, parse(series_doc(data, 0, 3 * STEP), "SERIES"), 3 * STEP)
    assert totals(state) == {"2xx": 2, "4xx": 2, "5xx": 2}
    assert all(s.value >= 0 for s in counter_samples(state, IDS))


def test_per_second_counters_multiply_by_the_step_and_mebibytes_convert() -> None:
    state = Counters()
    descriptors = [
        desc("baseten_rate_thing", "COUNTER", "PER_SECOND"),
        desc("baseten_swap", "COUNTER", "MEBIBYTES"),
    ]

    def doc(start: int, end: int) -> Any:
        vs = [(t, [[2.0], [3.0]]) for t in range(start, end, STEP)]
        return response("SERIES", descriptors, vs, start=start, end=end, step=60)

    state = count_steps(state, parse(doc(0, STEP), "SERIES"), STEP)
    state = count_steps(state, parse(doc(0, 2 * STEP), "SERIES"), 2 * STEP)
    got = {s.family.name: s.value for s in counter_samples(state, IDS)}
    assert got == {"baseten_rate_thing_total": 120.0, "baseten_swap_bytes_total": 3.0 * 1024 * 1024}


def test_a_label_set_that_appears_later_counts_from_the_baseline() -> None:
    state = Counters()
    one = [desc(REQ, "COUNTER", "COUNT", [{"status": "2xx"}])]
    state = count_steps(
        state, parse(response("SERIES", one, [(0, [[1.0]])], end=STEP, step=60), "SERIES"), STEP
    )
    two = [desc(REQ, "COUNTER", "COUNT", STATUS_SETS[:2])]
    vs = [(0, [[1.0, 9.0]]), (STEP, [[1.0, 3.0]])]
    state = count_steps(state, parse(response("SERIES", two, vs, end=2 * STEP, step=60), "SERIES"), 2 * STEP)
    # 4xx's step before the baseline end is history; the one after it counts.
    assert totals(state) == {"2xx": 1, "4xx": 3}


def test_a_series_the_answer_stops_describing_is_forgotten_and_never_counts_a_step_twice() -> None:
    state = Counters()

    def window(start: int, sets: list[dict[str, str]]) -> Any:
        vs = [(t, [[1.0] * len(sets)]) for t in range(start, start + 5 * STEP, STEP)]
        doc = response(
            "SERIES", [desc(REQ, "COUNTER", "COUNT", sets)], vs, start=start, end=start + 5 * STEP, step=60
        )
        return parse(doc, "SERIES")

    state = count_steps(state, window(0, STATUS_SETS), 5 * STEP)  # the baseline
    state = count_steps(state, window(STEP, STATUS_SETS), 6 * STEP)
    assert totals(state) == {"2xx": 1, "4xx": 1, "5xx": 1}
    state = count_steps(state, window(2 * STEP, STATUS_SETS[:2]), 7 * STEP)
    assert totals(state) == {"2xx": 2, "4xx": 2}
    # Back, in a window that still holds the step it was counted for: only the step it
    # missed and the new one are added, from 0 (Prometheus reads a restarted counter).
    state = count_steps(state, window(3 * STEP, STATUS_SETS), 8 * STEP)
    assert totals(state) == {"2xx": 3, "4xx": 3, "5xx": 2}


def per_step(t: int) -> float:
    """Requests in the step starting at ``t``: any deterministic function of the step."""
    return float((t // STEP) % 7 + 1)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=30),
    window_steps=st.integers(min_value=2, max_value=15),
    delay=st.integers(min_value=60, max_value=200),
)
def test_overlapping_polls_add_each_settled_step_exactly_once(
    gaps: list[int], window_steps: int, delay: int
) -> None:
    """Polls at arbitrary times, windows that overlap (or not): the counter's growth
    since the baseline is exactly the sum of the steps between, each once."""
    state = Counters()
    now = 1_700_000_000.0
    for gap in [0, *gaps]:
        # Polls at most (window - one step) apart: the documented minimum overlap.
        now += gap % ((window_steps - 1) * 60) + 1 if gap else 0
        start, end = window_bounds(now, window_steps * 60, delay, 60)
        vs = [(t, [[per_step(t), 0.0, None]]) for t in range(start, end, STEP)]
        doc = response(
            "SERIES", [desc(REQ, "COUNTER", "COUNT", STATUS_SETS)], vs, start=start, end=end, step=60
        )
        state = count_steps(state, parse(doc, "SERIES"), math.floor((now - delay) * 1000))
    if state.baseline_end is None:
        return
    counted_until = state.series[(REQ, (("status", "2xx"),))].counted_until
    expected = sum(per_step(t) for t in range(state.baseline_end, counted_until, STEP))
    assert totals(state)["2xx"] == expected
    assert "5xx" not in totals(state)


def test_counting_leaves_the_state_it_was_given_as_it_was() -> None:
    """A poll that fails after its counters' read keeps the totals from before it."""
    data = {t: [10.0, 1.0, 0.0] for t in range(0, 20 * STEP, STEP)}
    first = count_steps(Counters(), parse(series_doc(data, 0, 5 * STEP), "SERIES"), 5 * STEP)
    before = dict(first.series)
    second = count_steps(first, parse(series_doc(data, STEP, 7 * STEP), "SERIES"), 7 * STEP)
    assert totals(second) == {"2xx": 20, "4xx": 2, "5xx": 0}
    assert first.series == before and totals(first) == {"2xx": 0, "4xx": 0, "5xx": 0}
    # Nothing settled since: the same state back, nothing new for the collector.
    assert count_steps(second, parse(series_doc(data, STEP, 7 * STEP), "SERIES"), 6 * STEP) is second
