"""Baseten deployment metrics -> Prometheus samples, with no I/O and no clock.

The endpoint answers index-mapped JSON: ``metric_descriptors[i]`` describes metric
``i``; each value set's ``values[i][j]`` is the value of that metric's ``label_sets[j]``
in one step. Each label set becomes one series (``baseten_layout`` decides its family
and labels), labelled with the deployment's ``model_id`` and ``deployment_id``::

    # TYPE baseten_replicas_active gauge
    baseten_replicas_active{model_id="m",deployment_id="d"} 2
    # TYPE baseten_end_to_end_response_time_seconds summary
    baseten_end_to_end_response_time_seconds{model_id="m",deployment_id="d",quantile="0.5"} 0.21
    # TYPE baseten_end_to_end_response_time_avg_seconds gauge
    baseten_end_to_end_response_time_avg_seconds{model_id="m",deployment_id="d"} 0.25

COUNTER descriptors are not turned into samples here: a counter value is a total
over its step, and ``baseten_counters`` adds settled steps into a real counter.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from exporter.errors import InvalidResponse
from exporter.exposition import Labels, Sample
from exporter.sources.baseten.layout import (
    BOUNDED_RATIO_RE,
    COUNTER,
    ENDPOINT,
    UNITS,
    Descriptor,
    check_names,
    layout,
)
from exporter.sources.jsonshape import json_object, required_int, required_str

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


def _label_sets(raw: Any, where: Callable[[], str]) -> tuple[Labels, ...]:
    """A descriptor's label sets, each sorted by name. Runs for every descriptor of every
    poll: the usual shapes (no label, one label) take a short way, and ``where`` is
    only asked for a message."""
    if not isinstance(raw, list):
        raise InvalidResponse(f"{where()}: label_sets is not a list")
    out: list[Labels] = []
    for j, ls in enumerate(raw):
        if not isinstance(ls, dict):
            raise InvalidResponse(f"{where()}: label set {j} is not an object")
        for k, v in ls.items():
            if not isinstance(v, str):
                raise InvalidResponse(f"{where()}: label {str(k)[:40]!r} of label set {j} is not a string")
        out.append(tuple(sorted((str(k), v) for k, v in ls.items())) if len(ls) > 1 else tuple(ls.items()))
    if len(out) > 1 and len(set(out)) != len(out):
        raise InvalidResponse(f"{where()}: two label sets are the same")
    return tuple(out)


def _raw_key(raw: Any) -> tuple[Any, ...] | None:
    """A raw descriptor's content as a hashable key; None when it has not the shape of one
    (it is then parsed, and its error reported, the long way)."""
    try:
        key = (
            raw["name"],
            raw["kind"],
            raw["unit_hint"],
            tuple(tuple(ls.items()) for ls in raw["label_sets"]),
        )
        hash(key)
    except (TypeError, KeyError, AttributeError, IndexError):
        return None
    return key


@functools.lru_cache(maxsize=4096)
def _descriptor_of(key: tuple[Any, ...]) -> Descriptor:
    """The descriptor with this content, validated and built once: every deployment's
    answer describes the same few metrics at every poll. Invalid content raises (and
    is not kept)."""
    name, kind, unit, sets = key
    return _parse_descriptor(
        {"name": name, "kind": kind, "unit_hint": unit, "label_sets": [dict(s) for s in sets]}, 0
    )


def _descriptor(raw: Any, i: int) -> Descriptor:
    key = _raw_key(raw)
    if key is not None:
        with contextlib.suppress(InvalidResponse):  # reported below, with its index
            return _descriptor_of(key)
    return _parse_descriptor(raw, i)


def _parse_descriptor(raw: Any, i: int) -> Descriptor:
    def where() -> str:
        return f"{ENDPOINT}: metric_descriptors[{i}]"

    if not isinstance(raw, dict):
        raise InvalidResponse(f"{where()} is not an object")
    name, kind, unit = (required_str(raw, f, where(), empty=False) for f in ("name", "kind", "unit_hint"))
    return Descriptor(name, kind, unit, _label_sets(raw.get("label_sets"), lambda: f"{where()} ({name})"))


@functools.lru_cache(maxsize=1024)
def _check_names(descriptors: tuple[Descriptor, ...]) -> None:
    """``check_names`` once per set of descriptors (a failure is not kept: it raises again)."""
    check_names(descriptors)


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


def parse(doc: Any, expect_mode: str) -> Response:
    """Validate a GetDeploymentMetricsResponseV1 and index it; InvalidResponse on any mismatch
    (shape, lengths, label sets that cannot map to distinct series)."""
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
    descriptors = tuple(_descriptor(d, i) for i, d in enumerate(raw_desc))
    names = [d.name for d in descriptors]
    if len(set(names)) != len(names):
        raise InvalidResponse(f"{ENDPOINT}: a metric is described twice")
    # Every descriptor's families and labels are checked here, so that translating
    # and accumulating a parsed response can no longer fail half-way.
    _check_names(descriptors)
    starts: list[int] = []
    rows: list[tuple[tuple[float | None, ...], ...]] = []
    for s, vs in enumerate(raw_values):
        where = f"{ENDPOINT}: metric_values[{s}]"
        if not isinstance(vs, dict):
            raise InvalidResponse(f"{where} is not an object")
        starts.append(required_int(vs, "start_epoch_millis", where))
        values = vs.get("values")
        if not isinstance(values, list) or len(values) != len(descriptors):
            raise InvalidResponse(
                f"{where}: {len(values) if isinstance(values, list) else 'no'} values "
                f"for {len(descriptors)} descriptors"
            )
        row = []
        for i, (d, per_set) in enumerate(zip(descriptors, values, strict=True)):
            if not isinstance(per_set, list) or len(per_set) != len(d.label_sets):
                raise InvalidResponse(
                    f"{where}: values[{i}] ({d.name}) does not match its {len(d.label_sets)} label sets"
                )
            row.append(_numbers(per_set, f"{where}.values[{i}]"))
        rows.append(tuple(row))
    if any(b <= a for a, b in itertools.pairwise(starts)):
        raise InvalidResponse(f"{ENDPOINT}: value sets are not in increasing time order")
    ends = [*starts[1:], end_ms] if starts else []
    steps = tuple(Step(a, max(a, b), r) for a, b, r in zip(starts, ends, rows, strict=True))
    return Response(mode, start_ms, end_ms, step_s * 1000 if step_s else None, descriptors, steps)


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
        series = layout(d)
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
