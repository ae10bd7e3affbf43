"""Where each Baseten series goes: family name, type, HELP and label names.

A function of the descriptor only (name, kind, unit_hint, label sets), never of the
values, so every deployment that reports a metric declares its families the same way.

- GAUGE → one gauge family; COUNTER → one counter family named ``…_total``; an
  unknown kind → one ``untyped`` family (values passed through, documented fallback).
- HISTOGRAM → its ``{quantile: q}`` label sets form a ``summary`` family (quantiles
  only, no ``_sum``/``_count``: the vendor sends none); each ``{stat: s}`` label set
  goes to a gauge family with ``_s`` before the unit suffix
  (``baseten_end_to_end_response_time_avg_seconds``). Any other histogram label
  set is an unknown shape and fails the poll with a clear reason.
- Within a family the label names are the union over its label sets, in sorted
  order (``quantile`` last); a set without one of them gets the empty value, which
  Prometheus reads as "no such label".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from exporter.core.errors import InvalidResponse
from exporter.core.exposition import Family, Labels, MetricType

ENDPOINT = "/v1/models/{model_id}/deployments/{deployment_id}/metrics"
INFO_NAME = "baseten_deployment_info"
STATUS_NAME = "baseten_deployment_status"

GAUGE, COUNTER, HISTOGRAM = "GAUGE", "COUNTER", "HISTOGRAM"
MIB = 1024.0 * 1024.0

# unit_hint → (factor to base units, name suffix the family must end with).
# PERCENT is not in the vendor's enum; if it ever appears it is read as 0-100.
UNITS: dict[str, tuple[float, str]] = {
    "PER_SECOND": (1.0, ""),
    "SECONDS": (1.0, "_seconds"),
    "BYTES": (1.0, "_bytes"),
    "MEBIBYTES": (MIB, "_bytes"),
    "COUNT": (1.0, ""),
    "RATIO": (1.0, ""),
    "PERCENT": (0.01, ""),
}
_UNIT_SUFFIXES = ("_seconds", "_bytes")
# RATIO metrics that are bounded to [0, 1] by meaning. Values above 1 on these mean
# the vendor sent a percentage (GPU utilisation has been seen as 0-100).
BOUNDED_RATIO_RE = re.compile(r"(utili[sz]ation|hit_rate)$")
# Label names of ours, or that Prometheus gives a meaning to.
_RESERVED_LABELS = frozenset({"model_id", "deployment_id", "job", "instance", "le"})

# Makes the Family of a name, type and HELP text (a target's may hand out one it made before).
FamilyMaker = Callable[[str, MetricType, str], Family]


@dataclass(frozen=True, slots=True)
class Descriptor:
    name: str
    kind: str
    unit_hint: str
    # The vendor's label sets, each as sorted (key, value) pairs.
    label_sets: tuple[Labels, ...]


def sanitize_label_name(key: str, kind: str) -> str:
    """A vendor label key as a valid Prometheus label name that clashes with none of ours."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", key) or "_"
    if name[0].isdigit():
        name = "_" + name
    if name.startswith("__"):
        name = "vendor" + name
    if name in _RESERVED_LABELS or (name == "quantile" and kind != HISTOGRAM):
        name = "exported_" + name
    return name


def metric_name(vendor_name: str, kind: str, unit_hint: str) -> str:
    """The vendor's name in base units, ``baseten_`` prefixed, ``_total`` only on counters."""
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", vendor_name)
    if not name.startswith("baseten_"):
        name = "baseten_" + name
    base = name.removesuffix("_total")
    suffix = UNITS.get(unit_hint, (1.0, ""))[1]
    if unit_hint == "MEBIBYTES":
        for old in ("_mebibytes", "_mib"):
            base = base.removesuffix(old)
    if suffix and not base.endswith(suffix):
        base += suffix
    return base + "_total" if kind == COUNTER else base


def possible_families(vendor_name: str) -> frozenset[str]:
    """Every family a vendor metric could land in, whatever kind and unit its descriptor
    turns out to have (a histogram's average included): before the descriptor has been
    seen, a metric filter may leave the metric out of a request only if it removes all
    of these."""
    out: set[str] = set()
    for kind in (GAUGE, COUNTER, HISTOGRAM):
        for unit in UNITS:
            name = metric_name(vendor_name, kind, unit)
            out.add(name)
            if kind == HISTOGRAM:
                out.add(stat_name(name, "avg"))
    return frozenset(out)


def stat_name(name: str, stat: str) -> str:
    stat = re.sub(r"[^a-z0-9_]", "_", stat.lower()).strip("_") or "stat"
    for suffix in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return f"{name.removesuffix(suffix)}_{stat}{suffix}"
    return f"{name}_{stat}"


def _unit_note(d: Descriptor) -> str:
    if d.unit_hint not in UNITS:
        return f"unit_hint {d.unit_hint} unknown, values unconverted"
    if d.unit_hint == "MEBIBYTES":
        return "MEBIBYTES converted to bytes"
    if d.unit_hint == "RATIO" and BOUNDED_RATIO_RE.search(d.name):
        return "RATIO 0-1; values sent as 0-100 are divided by 100"
    return d.unit_hint


# Families whose name and help are this long at most are shared (real ones are
# about a hundred characters), so that what a target keeps stays small.
_SHARED_FAMILY_LENGTH = 512


def _family(d: Descriptor, name: str, mtype: MetricType, role: str, make: FamilyMaker) -> Family:
    help_text = f"Baseten deployment metric {d.name} ({role}; {_unit_note(d)})."
    if len(name) + len(help_text) > _SHARED_FAMILY_LENGTH:
        return Family(name, mtype, help_text)
    return make(name, mtype, help_text)


def _labels(sets: list[dict[str, str]]) -> list[Labels]:
    names = sorted({k for s in sets for k in s}, key=lambda k: (k == "quantile", k))
    return [tuple((k, s.get(k, "")) for k in names) for s in sets]


def layout(d: Descriptor, make: FamilyMaker = Family) -> tuple[tuple[Family, Labels], ...]:
    """The family and labels of each of the descriptor's label sets, in order; each
    family made by ``make``.

    Worked out once per descriptor a deployment keeps reporting (``descriptors``)."""
    where = f"{ENDPOINT}: {d.name}"
    sets: list[dict[str, str]] = []
    # A descriptor may have thousands of label sets over a few label names and families.
    label_names: dict[str, str] = {}
    made: dict[tuple[str, str], Family] = {}

    def family(fam_name: str, mtype: MetricType, role: str) -> Family:
        fam = made.get((fam_name, role))
        if fam is None:
            fam = made[(fam_name, role)] = _family(d, fam_name, mtype, role, make)
        return fam

    for j, raw in enumerate(d.label_sets):
        clean: dict[str, str] = {}
        for k, v in raw:
            key = label_names.get(k)
            if key is None:
                key = label_names[k] = sanitize_label_name(k, d.kind)
            if key in clean:
                raise InvalidResponse(f"{where}: label set {j} has two keys that map to label {key!r}")
            clean[key] = v
        sets.append(clean)
    name = metric_name(d.name, d.kind, d.unit_hint)
    # Family name → (family, indices of its label sets, those sets).
    groups: dict[str, tuple[Family, list[int], list[dict[str, str]]]] = {}

    def put(fam: Family, j: int, labels: dict[str, str]) -> None:
        entry = groups.setdefault(fam.name, (fam, [], []))
        entry[1].append(j)
        entry[2].append(labels)

    for j, s in enumerate(sets):
        if d.kind == HISTOGRAM:
            if "quantile" in s:
                try:
                    float(s["quantile"])
                except ValueError:
                    raise InvalidResponse(
                        f"{where}: quantile {s['quantile'][:20]!r} is not a number"
                    ) from None
                put(family(name, "summary", "HISTOGRAM quantiles"), j, s)
            elif "stat" in s:
                stat = s.pop("stat")
                put(family(stat_name(name, stat), "gauge", f"HISTOGRAM stat={stat}"), j, s)
            else:
                raise InvalidResponse(f"{where}: histogram label set {j} has neither quantile nor stat")
        elif d.kind == COUNTER:
            put(family(name, "counter", "per-step totals added up, each settled step once"), j, s)
        elif d.kind == GAUGE:
            put(family(name, "gauge", "GAUGE"), j, s)
        else:
            put(family(name, "untyped", f"kind {d.kind} unknown, values passed through"), j, s)
    out: list[tuple[Family, Labels] | None] = [None] * len(sets)
    for fam, indices, fam_sets in groups.values():
        labels = _labels(fam_sets)
        if len(set(labels)) != len(labels):
            raise InvalidResponse(f"{where}: two label sets give the same series")
        for j, lbl in zip(indices, labels, strict=True):
            out[j] = (fam, lbl)
    return tuple(x for x in out if x is not None)


def check_names(described: Iterable[tuple[Descriptor, tuple[tuple[Family, Labels], ...]]]) -> int:
    """Two descriptors must not land in one family (e.g. ``x`` in MiB and ``x_bytes``).

    Takes each descriptor with its ``layout``; returns how many families they land in."""
    fixed: dict[str, str] = {INFO_NAME: "(deployment info)", STATUS_NAME: "(deployment status)"}
    seen = dict(fixed)
    for d, series in described:
        for name in {fam.name for fam, _ in series} or {metric_name(d.name, d.kind, d.unit_hint)}:
            if name in seen and seen[name] != d.name:
                raise InvalidResponse(f"{ENDPOINT}: metrics {seen[name]!r} and {d.name!r} both map to {name}")
            seen[name] = d.name
    return len(seen) - len(fixed)
