"""A Baseten answer's metric descriptors: bounded, validated, laid out, and kept by their target.

Every poll of a deployment describes the same metrics, so what a descriptor becomes
(its ``Descriptor`` and ``layout``: the family and labels of each label set) is worked
out once and kept in the deployment's own ``DescriptorCache``, which holds the entries
its last answer used and those its current one uses, and no others: label values that
change at every poll replace what the cache holds instead of adding to it. Deployments
whose answers describe a metric alike share one entry through a table of weak
references, which keeps nothing alive by itself: it holds what the targets' caches
hold, no more. The cache also keeps the deployment's families (at most twice its
family limit), so that a descriptor whose label sets change keeps the same family
objects from poll to poll.

Before anything is built, an answer is measured against the target's ``Limits``:

- more descriptors than ``max_families``, or more label sets in all than
  ``max_series``, refuse the answer (``too_many_families``, ``too_many_series``), as do
  descriptors that lay out into more than ``max_families`` families;
- a label set with a key or value longer than ``max_label_length`` characters is
  dropped with its values, and a descriptor whose name, kind or unit_hint is longer
  is dropped whole (``Described.dropped`` counts the series lost); such descriptors
  are not kept, so the cache holds no string longer than the limit.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.core.errors import InvalidResponse, LimitExceeded
from exporter.core.exposition import Family, Labels, MetricType
from exporter.core.scope import DEFAULT_MAX_SERIES, MAX_SERIES_KEY
from exporter.sources.baseten.layout import ENDPOINT, Descriptor, FamilyMaker, check_names, layout
from exporter.sources.jsonshape import required_str

Series = tuple[tuple[Family, Labels], ...]
Key = tuple[Any, ...]

MAX_FAMILIES_KEY = "max_families_per_target"
MAX_LABEL_KEY = "max_label_value_length"
# Families of one deployment: the vendor documents a few dozen metrics, each one to
# three families.
DEFAULT_MAX_FAMILIES = 2_000
# Characters of a vendor label name or value (status classes, quantiles, replica
# names are tens); Mimir refuses values over 2,048 by default.
DEFAULT_MAX_LABEL_LENGTH = 1_024


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of one answer a deployment target takes (see the module docstring)."""

    max_series: int = DEFAULT_MAX_SERIES
    max_families: int = DEFAULT_MAX_FAMILIES
    max_label_length: int = DEFAULT_MAX_LABEL_LENGTH


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Described:
    """One descriptor as a poll uses it: the descriptor (its kept label sets only), the
    family and labels of each of them, which of the answer's label sets they are
    (None: all), how many the answer had and how many series were dropped."""

    descriptor: Descriptor
    series: Series
    kept: tuple[int, ...] | None
    raw_sets: int
    # The content it was built from (see ``_raw_key``), when it is kept.
    key: Key | None = None

    @property
    def dropped(self) -> int:
        return self.raw_sets - len(self.series)


# Described entries by (label length limit, content), while some target's cache holds them.
_shared: weakref.WeakValueDictionary[Key, Described] = weakref.WeakValueDictionary()


class DescriptorCache:
    """One deployment's descriptors by content: those its last poll used and its current
    one uses (``next_poll`` starts a poll), and the sets of them last checked whole."""

    __slots__ = ("_checked", "_current", "_families", "_last", "_max_families")

    def __init__(self, max_families: int = DEFAULT_MAX_FAMILIES) -> None:
        self._last: dict[Key, Described] = {}
        self._current: dict[Key, Described] = {}
        # The last two sets checked: a poll may read a second answer (its counters').
        self._checked: tuple[tuple[Described, ...], ...] = ()
        # Families by (name, type, help): a snapshot keeps its families, and a new
        # object per poll would be garbage for the collector to track.
        self._families: dict[tuple[str, str, str], Family] = {}
        self._max_families = 2 * max_families

    def next_poll(self) -> None:
        # The same two dicts for good, and keys that are the entries' own: a poll whose
        # answer is the last one's leaves nothing new behind for the collector.
        if self._current:
            self._last, self._current = self._current, self._last
            self._current.clear()

    def get(self, key: Key) -> Described | None:
        found = self._current.get(key)
        if found is None:
            found = self._last.get(key) or _shared.get(key)
            if found is not None:
                self._current[found.key or key] = found
        return found

    def family(self, name: str, mtype: MetricType, help_text: str) -> Family:
        """The family of that name, type and HELP this deployment made before, else a new one."""
        key = (name, mtype, help_text)
        found = self._families.get(key)
        if found is None:
            if len(self._families) >= self._max_families:
                self._families.clear()
            found = self._families[key] = Family(name, mtype, help_text)
        return found

    def put(self, described: Described) -> None:
        """Keep ``described`` (built from content ``described.key``), or the equal entry
        another deployment keeps."""
        assert described.key is not None
        shared = _shared.setdefault(described.key, described)
        self._current[shared.key or described.key] = shared

    def check(self, described: tuple[Described, ...], max_families: int) -> None:
        """``check_names`` and the family limit, once per distinct set of descriptors."""
        if described in self._checked:  # the same objects while nothing changed
            return
        families = check_names((d.descriptor, d.series) for d in described)
        if families > max_families:
            raise LimitExceeded(
                "too_many_families",
                MAX_FAMILIES_KEY,
                f"{ENDPOINT}: the answer's metrics make {families} families, more than "
                f"{MAX_FAMILIES_KEY} ({max_families}): raise it, or ask for fewer metrics",
            )
        self._checked = (described, *self._checked[:1])


def check_counts(raw_desc: list[Any], limits: Limits) -> None:
    """Refuse an answer with more descriptors or label sets than the limits allow,
    before any of it is built (a label set is a series)."""
    if len(raw_desc) > limits.max_families:
        raise LimitExceeded(
            "too_many_families",
            MAX_FAMILIES_KEY,
            f"{ENDPOINT}: the answer describes {len(raw_desc)} metrics, more than "
            f"{MAX_FAMILIES_KEY} ({limits.max_families}): raise it, or ask for fewer metrics",
        )
    try:
        series = sum(len(raw["label_sets"]) for raw in raw_desc)
    except (TypeError, KeyError):  # not every descriptor has the shape of one: count those that do
        series = sum(
            len(raw["label_sets"])
            for raw in raw_desc
            if isinstance(raw, dict) and isinstance(raw.get("label_sets"), list)
        )
    if series > limits.max_series:
        raise LimitExceeded(
            "too_many_series",
            MAX_SERIES_KEY,
            f"{ENDPOINT}: the answer has {series} series, more than {MAX_SERIES_KEY} "
            f"({limits.max_series}): raise it, or ask for fewer metrics",
        )


def describe(
    raw_desc: list[Any], limits: Limits, cache: DescriptorCache
) -> tuple[tuple[Described | None, ...], int]:
    """Each raw descriptor as ``Described``, None for one dropped whole (too long a name,
    kind or unit), and how many series were dropped; InvalidResponse for a descriptor
    that is not valid."""
    check_counts(raw_desc, limits)
    limit = limits.max_label_length
    out: list[Described | None] = []
    dropped = 0
    for i, raw in enumerate(raw_desc):
        key = _raw_key(raw, limit)
        found = None if key is None else cache.get(key)
        if found is None:
            found = _build(raw, i, limit, key, cache.family)
            if found is None:
                dropped += len(raw["label_sets"])  # validated by _build
            elif found.kept is None:
                if key is not None:
                    cache.put(found)
            else:
                dropped += found.dropped
        out.append(found)
    return tuple(out), dropped


def _raw_key(raw: Any, limit: int) -> Key | None:
    """A raw descriptor's content (and the length limit it is read with) as a hashable
    key; None when it has not the shape of one (it is then parsed, and its error
    reported, the long way)."""
    try:
        key = (
            limit,
            raw["name"],
            raw["kind"],
            raw["unit_hint"],
            tuple(tuple(ls.items()) for ls in raw["label_sets"]),
        )
        hash(key)
    except (TypeError, KeyError, AttributeError, IndexError):
        return None
    return key


def _build(raw: Any, i: int, limit: int, key: Key | None, make: FamilyMaker) -> Described | None:
    def where() -> str:
        return f"{ENDPOINT}: metric_descriptors[{i}]"

    if not isinstance(raw, dict):
        raise InvalidResponse(f"{where()} is not an object")
    name, kind, unit = (required_str(raw, f, where(), empty=False) for f in ("name", "kind", "unit_hint"))
    sets, too_long = _label_sets(raw.get("label_sets"), limit, lambda: f"{where()} ({name[:100]})")
    if max(len(name), len(kind), len(unit)) > limit:
        return None
    if not too_long:
        d = Descriptor(name, kind, unit, tuple(sets))
        return Described(d, layout(d, make), None, len(sets), key)
    kept = tuple(j for j in range(len(sets)) if j not in too_long)
    d = Descriptor(name, kind, unit, tuple(sets[j] for j in kept))
    return Described(d, layout(d, make), kept, len(sets))


def _label_sets(raw: Any, limit: int, where: Callable[[], str]) -> tuple[list[Labels], set[int]]:
    """A descriptor's label sets, each sorted by name, and those with a name or value
    longer than ``limit``. The usual shapes (no label, one label) take a short way, and
    ``where`` is only asked for a message."""
    if not isinstance(raw, list):
        raise InvalidResponse(f"{where()}: label_sets is not a list")
    out: list[Labels] = []
    too_long: set[int] = set()
    for j, ls in enumerate(raw):
        if not isinstance(ls, dict):
            raise InvalidResponse(f"{where()}: label set {j} is not an object")
        for k, v in ls.items():
            if not isinstance(v, str):
                raise InvalidResponse(f"{where()}: label {str(k)[:40]!r} of label set {j} is not a string")
            if len(v) > limit or len(k) > limit:
                too_long.add(j)
        out.append(tuple(sorted((str(k), v) for k, v in ls.items())) if len(ls) > 1 else tuple(ls.items()))
    if len(out) > 1 and len(set(out)) != len(out):
        raise InvalidResponse(f"{where()}: two label sets are the same")
    return out, too_long
