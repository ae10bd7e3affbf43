"""Real Prometheus counters from Baseten's per-step COUNTER values.

A Baseten COUNTER value is the total over one step (requests in that minute), not
a running total. To give ``rate()``/``increase()`` the vendor's per-step sums, each
series keeps a running total that adds every *settled* step exactly once:

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
from dataclasses import dataclass

from exporter.core.exposition import Family, Labels, Sample
from exporter.sources.baseten.layout import COUNTER, UNITS
from exporter.sources.baseten.translate import Response, settled_steps


@dataclass(slots=True)
class _Series:
    family: Family
    total: float
    counted_until: int


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


class CounterState:
    """The running totals of one deployment's counters (kept across polls and reloads)."""

    def __init__(self) -> None:
        self.baseline_end: int | None = None
        self.series: dict[tuple[str, Labels], _Series] = {}
        # Where the counted time of the series forgotten so far ends, at the latest.
        self.forgotten_until = 0

    def update(self, resp: Response, cutoff_ms: int) -> None:
        """Add the settled steps of a SERIES response not yet counted."""
        steps = settled_steps(resp, cutoff_ms)
        if not steps:
            return
        counters = [(i, d, resp.layouts[i]) for i, d in enumerate(resp.descriptors) if d.kind == COUNTER]
        if self.baseline_end is None:
            end = steps[-1].end_ms
            for i, d, series in counters:
                for j, (fam, labels) in enumerate(series):
                    if any(
                        step_increment(s.values[i][j], d.unit_hint, s.end_ms - s.start_ms) is not None
                        for s in steps
                    ):
                        self.series[(fam.name, labels)] = _Series(fam, 0.0, end)
            self.baseline_end = end
            return
        start = max(self.baseline_end, self.forgotten_until)
        described = 0
        for i, d, series in counters:
            for j, (fam, labels) in enumerate(series):
                key = (fam.name, labels)
                known = self.series.get(key)
                described += known is not None
                for s in steps:
                    inc = step_increment(s.values[i][j], d.unit_hint, s.end_ms - s.start_ms)
                    if inc is None:
                        continue
                    if known is None:
                        # First data of a series after the baseline: it counts from there.
                        known = self.series[key] = _Series(fam, 0.0, start)
                        described += 1
                    if s.start_ms < known.counted_until:
                        continue
                    known.total += inc
                    known.counted_until = s.end_ms
        if described < len(self.series):
            self._forget_all_but({(fam.name, labels) for _, _, series in counters for fam, labels in series})

    def _forget_all_but(self, described: set[tuple[str, Labels]]) -> None:
        for key in [k for k in self.series if k not in described]:
            self.forgotten_until = max(self.forgotten_until, self.series.pop(key).counted_until)

    def samples(self, ids: Labels) -> list[Sample]:
        return [Sample(s.family, (*ids, *labels), s.total) for (_, labels), s in sorted(self.series.items())]
