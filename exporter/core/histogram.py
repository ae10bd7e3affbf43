"""A cumulative histogram kept by the exporter itself, rendered as ``_bucket``/``_sum``/``_count``.

Used where the exporter measures something over and over (the probe's phases) and
Prometheus should see the distribution of all of it, not only the last value. The
counts live in the target's state, so they survive every poll and every reload that
keeps the target; they are counters and only go up.

Bucket bounds are rendered as the Prometheus client libraries write them (``30.0``,
``0.5``, ``1e+06``), which is also the form Prometheus 3 normalises ``le`` to on
ingestion: one spelling in every version, so a rule can match ``le="30.0"`` exactly.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from itertools import pairwise

from prometheus_client.utils import floatToGoString

from exporter.core.exposition import Family, Labels, Sample


def check_bounds(bounds: Iterable[float]) -> tuple[float, ...]:
    """Upper bounds as a tuple: at least one, finite, strictly increasing; else ValueError.

    ``+Inf`` is implicit (every histogram has it), so it may not be listed.
    """
    out = tuple(float(b) for b in bounds)
    if not out:
        raise ValueError("at least one bucket bound is needed")
    if not all(math.isfinite(b) for b in out):
        raise ValueError("bucket bounds must be finite numbers (+Inf is always added)")
    if any(b >= n for b, n in pairwise(out)):
        raise ValueError("bucket bounds must be strictly increasing")
    return out


def le_label(bound: float) -> str:
    """The ``le`` label value of a bound (see the module docstring)."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]  # the library has no annotations


class CumulativeHistogram:
    """Observations counted per bucket, with their sum and count; one histogram series."""

    __slots__ = ("bounds", "count", "in_bucket", "le_values", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = check_bounds(bounds)
        self.le_values = (*(le_label(b) for b in self.bounds), "+Inf")
        # Observations per bucket, not yet cumulative; the last one is (largest bound, +Inf).
        self.in_bucket = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation; a NaN is ignored (it has no bucket)."""
        if math.isnan(value):
            return
        self.in_bucket[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self, family: Family, labels: Labels) -> list[Sample]:
        """``_bucket`` per bound and ``+Inf`` (cumulative), then ``_sum`` and ``_count``."""
        out: list[Sample] = []
        running = 0
        for le, n in zip(self.le_values, self.in_bucket, strict=True):
            running += n
            out.append(Sample(family, (*labels, ("le", le)), float(running), "_bucket"))
        out.append(Sample(family, labels, self.sum, "_sum"))
        out.append(Sample(family, labels, float(self.count), "_count"))
        return out
