"""Baseten deployment metrics -> Prometheus samples, with no I/O and no clock.

The endpoint answers index-mapped JSON: ``metric_descriptors[i]`` describes metric
``i``; each value set's ``values[i][j]`` is the value of that metric's ``label_sets[j]``
in one step. Each label set becomes one series (``layout`` decides its family
and labels), labelled with the deployment's ``model_id`` and ``deployment_id``::

    # TYPE baseten_replicas_active gauge
    baseten_replicas_active{model_id="m",deployment_id="d"} 2
    # TYPE baseten_end_to_end_response_time_seconds summary
    baseten_end_to_end_response_time_seconds{model_id="m",deployment_id="d",quantile="0.5"} 0.21
    # TYPE baseten_end_to_end_response_time_avg_seconds gauge
    baseten_end_to_end_response_time_avg_seconds{model_id="m",deployment_id="d"} 0.25

COUNTER descriptors are not turned into samples here: a counter value is a total
over its step, and ``deployment`` adds settled steps into a real counter.
Descriptors are measured against the target's limits, read and kept by ``descriptors``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from exporter.core.errors import InvalidResponse
from exporter.core.exposition import Labels, Sample
from exporter.sources.baseten.descriptors import (
    DEFAULT_LIMITS,
    DescriptorCache,
    Limits,
    Series,
    describe,
)
from exporter.sources.baseten.layout import BOUNDED_RATIO_RE, COUNTER, ENDPOINT, UNITS, Descriptor
from exporter.sources.jsonshape import json_object, required_int

_MODES = frozenset({"CURRENT", "SUMMARY", "SERIES"})
# A bounded ratio above this was sent as percent; the margin absorbs rounding noise.
PERCENT_THRESHOLD = 1.05


@dataclass(frozen=True, slots=True)
class Step:
    start_ms: int
    end_ms: int
    # values[i][j]: descriptor i, label set j; None where the vendor sent null.
    values: tuple[tuple[float | None, ...], ...]


@dataclass(frozen=True, slots=True)
class Response:
    mode: str
    start_ms: int
    end_ms: int
    step_ms: int | None
    descriptors: tuple[Descriptor, ...]
    steps: tuple[Step, ...]
    # layouts[i]: the family and labels of each of descriptors[i]'s label sets.
    layouts: tuple[Series, ...] = ()
    # Series left out for a label, or a metric name, longer than the limit.
    dropped: int = 0


def _numbers(per_set: list[Any], where: str) -> tuple[float | None, ...]:
    """One label set list's values as floats, None for null; InvalidResponse otherwise.

    Runs for every value of every poll, so the message is only built on failure.
    """
    out: list[float | None] = []
    for v in per_set:
        t = type(v)
        if t is float or t is int:  # exact types: a JSON true is not the number 1
            out.append(float(v))
        elif v is None:
            out.append(None)
        else:
            raise InvalidResponse(f"{where}: value is not a number or null")
    return tuple(out)


def parse(
    doc: Any, expect_mode: str, limits: Limits = DEFAULT_LIMITS, cache: DescriptorCache | None = None
) -> Response:
    """Validate a GetDeploymentMetricsResponseV1 and index it; InvalidResponse on any mismatch
    (shape, lengths, label sets that cannot map to distinct series), LimitExceeded for an
    answer past the target's ``limits`` (see ``descriptors``). ``cache`` is the target's
    (a fresh one when not given)."""
    doc = json_object(doc, ENDPOINT)
    mode = doc.get("mode")
    if mode not in _MODES:
        raise InvalidResponse(f"{ENDPOINT}: unknown mode {str(mode)[:40]!r}")
    if mode != expect_mode:
        raise InvalidResponse(f"{ENDPOINT}: asked for mode {expect_mode}, got {mode}")
    start_ms, end_ms = (
        required_int(doc, "start_epoch_millis", ENDPOINT),
        required_int(doc, "end_epoch_millis", ENDPOINT),
    )
    step_s = doc.get("step_seconds")
    if step_s is not None and (isinstance(step_s, bool) or not isinstance(step_s, int) or step_s <= 0):
        raise InvalidResponse(f"{ENDPOINT}: step_seconds is not a positive integer or null")
    raw_desc, raw_values = doc.get("metric_descriptors"), doc.get("metric_values")
    if not isinstance(raw_desc, list) or not isinstance(raw_values, list):
        raise InvalidResponse(f"{ENDPOINT}: metric_descriptors and metric_values must be lists")
    cache = DescriptorCache() if cache is None else cache
    described, dropped = describe(raw_desc, limits, cache)
    kept = tuple(d for d in described if d is not None)
    names = [d.descriptor.name for d in kept]
    if len(set(names)) != len(names):
        raise InvalidResponse(f"{ENDPOINT}: a metric is described twice")
    # Every descriptor's families and labels are checked here, so that translating
    # and accumulating a parsed response can no longer fail half-way.
    cache.check(kept, limits.max_families)
    starts: list[int] = []
    rows: list[tuple[tuple[float | None, ...], ...]] = []
    for s, vs in enumerate(raw_values):
        where = f"{ENDPOINT}: metric_values[{s}]"
        if not isinstance(vs, dict):
            raise InvalidResponse(f"{where} is not an object")
        starts.append(required_int(vs, "start_epoch_millis", where))
        values = vs.get("values")
        if not isinstance(values, list) or len(values) != len(described):
            raise InvalidResponse(
                f"{where}: {len(values) if isinstance(values, list) else 'no'} values "
                f"for {len(described)} descriptors"
            )
        row = []
        for i, (d, per_set) in enumerate(zip(described, values, strict=True)):
            if d is None:
                continue
            if not isinstance(per_set, list) or len(per_set) != d.raw_sets:
                raise InvalidResponse(
                    f"{where}: values[{i}] ({d.descriptor.name}) does not match its {d.raw_sets} label sets"
                )
            if d.kept is not None:
                per_set = [per_set[j] for j in d.kept]
            row.append(_numbers(per_set, f"{where}.values[{i}]"))
        rows.append(tuple(row))
    if any(b <= a for a, b in itertools.pairwise(starts)):
        raise InvalidResponse(f"{ENDPOINT}: value sets are not in increasing time order")
    ends = [*starts[1:], end_ms] if starts else []
    steps = tuple(Step(a, max(a, b), r) for a, b, r in zip(starts, ends, rows, strict=True))
    return Response(
        mode,
        start_ms,
        end_ms,
        step_s * 1000 if step_s else None,
        tuple(d.descriptor for d in kept),
        steps,
        tuple(d.series for d in kept),
        dropped,
    )


def step_length_ms(resp: Response) -> int | None:
    """Length of a full step: the vendor's step_seconds, else the spacing of value sets."""
    if resp.step_ms:
        return resp.step_ms
    if len(resp.steps) >= 2:
        return resp.steps[1].start_ms - resp.steps[0].start_ms
    if resp.steps:
        return resp.steps[0].end_ms - resp.steps[0].start_ms or None
    return None


def settled_steps(resp: Response, cutoff_ms: int) -> list[Step]:
    """Steps that are complete (a full step long) and end at or before ``cutoff_ms``.

    A shorter last step is still filling up; it is read once it is complete.
    """
    full = step_length_ms(resp)
    if full is None:
        return []
    return [s for s in resp.steps if s.end_ms - s.start_ms >= full and s.end_ms <= cutoff_ms]


def percent_scaled(d: Descriptor, steps: Iterable[Step], index: int, seen_before: bool) -> bool:
    """Whether a bounded RATIO metric is being sent as 0-100.

    It is, once any of its values exceeds 1 (by more than rounding noise: 1.05); a
    target remembers that (``seen_before``)
    so a near-idle 0.5 % is not later read as 50 %. Until a value above 1 has been
    seen, values are taken as the ratio the unit_hint says they are.
    """
    if d.unit_hint != "RATIO" or not BOUNDED_RATIO_RE.search(d.name):
        return False
    if seen_before:
        return True
    return any(
        v is not None and math.isfinite(v) and v > PERCENT_THRESHOLD for s in steps for v in s.values[index]
    )


def gauge_step(resp: Response, cutoff_ms: int) -> Step | None:
    """The value set gauges are read from: the only one (CURRENT, SUMMARY) or the
    latest settled step (SERIES)."""
    if resp.mode == "SERIES":
        settled = settled_steps(resp, cutoff_ms)
        return settled[-1] if settled else None
    if len(resp.steps) > 1:
        raise InvalidResponse(f"{ENDPOINT}: mode {resp.mode} returned {len(resp.steps)} value sets, not one")
    return resp.steps[0] if resp.steps else None


def gauge_samples(
    resp: Response, ids: Labels, cutoff_ms: int, percent: frozenset[str] = frozenset()
) -> tuple[list[Sample], frozenset[str]]:
    """Samples of every non-COUNTER descriptor, and the updated set of metrics known
    to be sent as percent. null, NaN and ±Inf give no sample: none of them is a
    value a gauge can meaningfully hold."""
    step = gauge_step(resp, cutoff_ms)
    samples: list[Sample] = []
    now_percent = set(percent)
    for i, d in enumerate(resp.descriptors):
        if d.kind == COUNTER:
            continue
        factor = UNITS.get(d.unit_hint, (1.0, ""))[0]
        if percent_scaled(d, resp.steps, i, d.name in percent):
            now_percent.add(d.name)
            factor = 0.01
        else:
            now_percent.discard(d.name)
        series = resp.layouts[i]
        if step is None:
            continue
        for (fam, labels), v in zip(series, step.values[i], strict=True):
            if v is None or not math.isfinite(v):
                continue
            samples.append(Sample(fam, (*ids, *labels), v * factor))
    # The same object while nothing changed: the target keeps it, and a new one per
    # poll would only add to what the garbage collector tracks.
    return samples, percent if now_percent == percent else frozenset(now_percent)


def counter_names(resp: Response) -> list[str]:
    return [d.name for d in resp.descriptors if d.kind == COUNTER]
