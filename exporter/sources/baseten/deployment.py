"""One poll of a Baseten deployment as pure functions: what to ask, and what the answers make.

No I/O, no clock, no globals. A poll reads the metrics endpoint at most twice:

1. ``main_query``: the configured mode, naming the metrics to ask for (under a metric
   filter, only those whose families it keeps; None when it keeps none of them);
2. ``counters_query``: in CURRENT and SUMMARY modes, a SERIES window that trails
   ``now - delay`` for the COUNTER metrics the first answer described, because only
   steps with known boundaries can be added to a running total exactly once. The
   window is step-aligned, so while it has not moved since the last read that
   succeeded no new step can have settled: the read is skipped (None). In SERIES
   mode the first answer has the counters' steps.

``advance`` then folds both answers into the deployment's ``State`` and returns the new
state with the poll's samples: gauges and histograms (``translate``), the running
counters, and the deployment's ``_info`` and status (``lists``). The caller keeps the
new state only once every read has succeeded, so a failed poll changes nothing.

Counters. A Baseten COUNTER value is the total over one step (requests in that
minute), not a running total. To give ``rate()``/``increase()`` the vendor's per-step
sums, each series keeps a running total that adds every *settled* step exactly once:

- only steps that are complete and end before ``now - delay`` are read (until the
  vendor's 1-3 minute ingestion lag has passed, a step reads 0 and would be lost);
- each series remembers where its counted time ends (``counted_until``); a step is
  added only if it starts there or later, so overlapping windows, repeated polls and
  a changed step grid can never add the same stretch of time twice;
- a null step adds nothing and does not move ``counted_until``, so a step the vendor
  fills in late is still added if no later step of that series has been;
- the first window read is the baseline: series seen there start at 0 and the
  steps in it are history, not increments. After a restart the counters start again
  from 0 (Prometheus sees a reset) rather than counting that history a second time;
- a series the latest window no longer describes is forgotten (label values that
  change at every poll must not pile up). Should it come back it starts again from 0,
  counting only steps after every forgotten series' counted time, so no step is ever
  added twice (at worst a step is missed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from exporter.core.exposition import Family, Labels, Sample
from exporter.core.scope import NO_FILTER, MetricFilter
from exporter.sources.baseten import lists
from exporter.sources.baseten import translate as tr
from exporter.sources.baseten.layout import COUNTER, UNITS, possible_families
from exporter.sources.baseten.vendor import DEFAULT_METRICS, MAX_WINDOW_SECONDS

# The step assumed before the vendor has told us its step for a window.
DEFAULT_STEP_SECONDS = 60.0


class Request(Protocol):
    """What the config asks of a deployment's metrics (its request settings once
    defaults are applied)."""

    @property
    def mode(self) -> str: ...

    @property
    def metrics(self) -> tuple[str, ...]: ...

    @property
    def window(self) -> float: ...

    @property
    def counter_window(self) -> float: ...

    @property
    def delay(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Deployment:
    """What a poll is asked with: the deployment's ids (as labels), its request settings,
    the metric filter, and its metadata for ``_info`` and status (None: not known)."""

    ids: Labels
    request: Request
    keep: MetricFilter = NO_FILTER
    meta: lists.Meta | None = None


def window_bounds(now: float, window: float, delay: float, step: float) -> tuple[int, int]:
    """(start, end) in epoch millis: the window ends at ``now - delay`` floored to a
    multiple of ``step``, and spans ``window`` rounded to whole steps (never past 7
    days). On a fixed grid, consecutive polls ask for the same step boundaries."""
    step_ms = max(1000, int(step * 1000))
    end = math.floor((now - delay) * 1000 / step_ms) * step_ms
    length = math.ceil(window * 1000 / step_ms) * step_ms
    if length > MAX_WINDOW_SECONDS * 1000:
        length = math.floor(MAX_WINDOW_SECONDS * 1000 / step_ms) * step_ms
    return end - length, end


@dataclass(frozen=True, slots=True)
class Query:
    """One read of the metrics endpoint: its mode, the metrics it names (none: the
    vendor's default set) and, but in CURRENT mode, its window in epoch millis."""

    mode: str
    metrics: tuple[str, ...] = ()
    start_ms: int | None = None
    end_ms: int | None = None

    @classmethod
    def of(
        cls, mode: str, metrics: tuple[str, ...], now: float, window: float, delay: float, step: float
    ) -> Query:
        """A read in ``mode`` of the window that ends ``delay`` before ``now``, on a grid of
        ``step`` in SERIES mode (of whole seconds in SUMMARY mode)."""
        if mode == "CURRENT":
            return cls(mode, metrics)
        start, end = window_bounds(now, window, delay, step if mode == "SERIES" else 1.0)
        return cls(mode, metrics, start, end)

    def params(self) -> dict[str, Any]:
        """The query string's parameters."""
        params: dict[str, Any] = {"mode": self.mode}
        if self.start_ms is not None:
            params["start_epoch_millis"] = self.start_ms
            params["end_epoch_millis"] = self.end_ms
        if self.metrics:
            params["metrics"] = list(self.metrics)
        return params


class Running(NamedTuple):
    """One counter series: its family, running total and where its counted time ends."""

    family: Family
    total: float
    counted_until: int


@dataclass(frozen=True, slots=True)
class Counters:
    """The running totals of one deployment's counters."""

    # The end of the first window read (None until one has been).
    baseline_end: int | None = None
    series: Mapping[tuple[str, Labels], Running] = field(default_factory=dict)
    # Where the counted time of the series forgotten so far ends, at the latest.
    forgotten_until: int = 0


@dataclass(frozen=True, slots=True)
class State:
    """What one deployment's polls carry over (across reloads too: its target keeps it)."""

    counters: Counters = Counters()
    # Bounded RATIO metrics known to be sent as 0-100 (``translate.percent_scaled``).
    percent: frozenset[str] = frozenset()
    # The vendor's step for the main window (SERIES mode) and the counters' window.
    step: float = DEFAULT_STEP_SECONDS
    counter_step: float = DEFAULT_STEP_SECONDS
    # The last counters' read that succeeded (CURRENT and SUMMARY modes).
    counters_read: Query | None = None
    # Under a metric filter: the families each metric asked for lands in, as its last
    # answer described them, else every family it could land in.
    families: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answers:
    """What a poll's reads returned: the main read's (None: nothing was asked) and the
    counters' read with the query that asked for it (None: not asked)."""

    main: tr.Response | None = None
    counters: tr.Response | None = None
    counters_query: Query | None = None


def cutoff_ms(now: float, delay: float) -> int:
    """Steps that end after this (epoch millis) may still be filling in."""
    return math.floor((now - delay) * 1000)


# --- what to ask ------------------------------------------------------------------------


def main_query(state: State, d: Deployment, now: float) -> Query | None:
    """The first read; None when the metric filter removes every metric it would ask for."""
    req = d.request
    if not d.keep.active:
        metrics = req.metrics
    else:
        metrics = tuple(n for n in req.metrics or DEFAULT_METRICS if _wanted(state, d, n))
        if not metrics:
            return None
    return Query.of(req.mode, metrics, now, req.window, req.delay, state.step)


def counters_query(state: State, d: Deployment, main: tr.Response | None, now: float) -> Query | None:
    """The counters' SERIES read after ``main``; None when none is needed."""
    req = d.request
    if req.mode == "SERIES" or main is None:
        return None
    known = _landing(main, d)
    names = tuple(n for n in tr.counter_names(main) if _wanted(state, d, n, known))
    if not names:
        return None
    query = Query.of("SERIES", names, now, req.counter_window, req.delay, state.counter_step)
    return None if query == state.counters_read else query


def _wanted(
    state: State, d: Deployment, name: str, known: Mapping[str, frozenset[str]] | None = None
) -> bool:
    """False if the metric filter removes every family of vendor metric ``name`` (those
    it is ``known`` to land in, or was seen to in earlier answers, else every family
    the name could land in)."""
    if not d.keep.active:
        return True
    families = (known or {}).get(name) or state.families.get(name) or possible_families(name)
    return any(d.keep.keeps(f) for f in families)


def _landing(resp: tr.Response, d: Deployment) -> dict[str, frozenset[str]]:
    """The families each metric of ``resp`` lands in (under a metric filter only)."""
    if not d.keep.active:
        return {}
    return {
        desc.name: frozenset(fam.name for fam, _ in series)
        for desc, series in zip(resp.descriptors, resp.layouts, strict=True)
    }


# --- what the answers make --------------------------------------------------------------


def advance(state: State, d: Deployment, answers: Answers, now: float) -> tuple[State, list[Sample]]:
    """The deployment's new state and the poll's samples, from the answers to the reads
    ``main_query`` and ``counters_query`` asked for."""
    req = d.request
    cutoff = cutoff_ms(now, req.delay)
    main = answers.main
    samples: list[Sample] = []
    percent = state.percent
    if main is not None:
        samples, percent = tr.gauge_samples(main, d.ids, cutoff, percent)
    series = main if req.mode == "SERIES" else answers.counters
    step, counter_step, counters = state.step, state.counter_step, state.counters
    if series is not None:
        step_ms = tr.step_length_ms(series)
        if step_ms:
            if req.mode == "SERIES":
                step = step_ms / 1000
            else:
                counter_step = step_ms / 1000
        counters = count_steps(counters, series, cutoff)
    samples += counter_samples(counters, d.ids)
    if d.meta is not None:
        samples += lists.meta_samples(d.ids, d.meta)
    new = State(
        counters,
        percent,
        step,
        counter_step,
        state.counters_read if answers.counters is None else answers.counters_query,
        _families(state, d, main),
    )
    return new, samples


def _families(state: State, d: Deployment, main: tr.Response | None) -> Mapping[str, frozenset[str]]:
    """``State.families`` after ``main``: for each metric asked for, where it lands."""
    if not d.keep.active:
        return state.families
    known = _landing(main, d) if main is not None else {}
    families = {
        n: (known[n] if n in known else state.families.get(n)) or possible_families(n)
        for n in d.request.metrics or DEFAULT_METRICS
    }
    # The same object while nothing changed: the target keeps it.
    return state.families if families == state.families else families


def step_increment(value: float | None, unit_hint: str, length_ms: int) -> float | None:
    """A step's value as an increment in base units, or None if it is not one.

    null, NaN, ±Inf and negative values are no data: a counter only goes up. A
    PER_SECOND counter is an average rate over the step, so it is multiplied by the
    step's length to give the step's total.
    """
    if value is None or not math.isfinite(value) or value < 0:
        return None
    factor = UNITS.get(unit_hint, (1.0, ""))[0]
    if unit_hint == "PER_SECOND":
        factor = length_ms / 1000.0
    return value * factor


def count_steps(counters: Counters, resp: tr.Response, cutoff: int) -> Counters:
    """``counters`` with the settled steps of a SERIES answer not yet counted added."""
    steps = tr.settled_steps(resp, cutoff)
    if not steps:
        return counters
    described = [
        (i, desc, resp.layouts[i]) for i, desc in enumerate(resp.descriptors) if desc.kind == COUNTER
    ]
    if counters.baseline_end is None:
        end = steps[-1].end_ms
        baseline = {
            (fam.name, labels): Running(fam, 0.0, end)
            for i, desc, layout in described
            for j, (fam, labels) in enumerate(layout)
            if any(
                step_increment(s.values[i][j], desc.unit_hint, s.end_ms - s.start_ms) is not None
                for s in steps
            )
        }
        return Counters(end, baseline, counters.forgotten_until)
    start = max(counters.baseline_end, counters.forgotten_until)
    series: dict[tuple[str, Labels], Running] = {}
    changed = False
    for i, desc, layout in described:
        for j, (fam, labels) in enumerate(layout):
            key = (fam.name, labels)
            known = counters.series.get(key)
            for s in steps:
                inc = step_increment(s.values[i][j], desc.unit_hint, s.end_ms - s.start_ms)
                if inc is None:
                    continue
                if known is None:
                    # First data of a series after the baseline: it counts from there.
                    known = Running(fam, 0.0, start)
                    changed = True
                if s.start_ms < known.counted_until:
                    continue
                known = Running(known.family, known.total + inc, s.end_ms)
                changed = True
            if known is not None:
                series[key] = known
    if not changed and len(series) == len(counters.series):  # nothing added, nothing forgotten
        # The same object while nothing changed: the target keeps it.
        return counters
    forgotten = counters.forgotten_until
    for key, gone in counters.series.items():
        if key not in series:
            forgotten = max(forgotten, gone.counted_until)
    return Counters(counters.baseline_end, series, forgotten)


def counter_samples(counters: Counters, ids: Labels) -> list[Sample]:
    return [Sample(s.family, (*ids, *labels), s.total) for (_, labels), s in sorted(counters.series.items())]
