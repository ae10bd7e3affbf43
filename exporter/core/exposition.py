"""Prometheus text exposition (format 0.0.4) for samples we produce ourselves.

Rendering happens once per poll, not once per scrape: a poll turns its samples into
bytes per family, and a scrape only joins those bytes. That is why this module works
on plain tuples and bytes instead of prometheus_client's metric objects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple

from exporter.core.clash import exported_names, reversible, watched

MetricType = Literal["gauge", "counter", "summary", "histogram", "untyped"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

Labels = tuple[tuple[str, str], ...]
_NO_NAMES: frozenset[str] = frozenset()
_NO_PLAIN: Mapping[str, bytes] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Family:
    """Name, type, help and label names of one metric family.

    ``name`` is the full sample name: counters carry their ``_total`` suffix here, as
    the text format's ``# TYPE`` line for a counter names the sample. A histogram's
    ``name`` is its base name; its samples add ``_bucket``, ``_sum`` or ``_count``
    (``Sample.suffix``). ``labels`` are the names its samples carry, in their order,
    before a target's own (``account`` and the configured ones) and a histogram's
    ``le``: what the filters, the catalog and the reserved labels go by. A family named
    from vendor data may leave them out (empty) when the vendor's data decides them.
    """

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not valid_metric_name(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        if self.type != "counter" and self.name.endswith("_total"):
            raise ValueError(f"only counters may end in _total: {self.name!r}")

    def header(self) -> bytes:
        return f"# HELP {self.name} {escape_help(self.help)}\n# TYPE {self.name} {self.type}\n".encode()


class Sample(NamedTuple):
    """One sample of a family. Labels are kept in the order given.

    ``suffix`` is appended to the family's name: ``_bucket``, ``_sum`` or ``_count`` for
    a histogram's samples, empty for every other type. A tuple rather than a frozen
    dataclass: every poll makes one per series, and a tuple is built at a fraction of
    the cost.
    """

    family: Family
    labels: Labels
    value: float
    suffix: str = ""


class Rendered:
    """All families one target contributes, rendered: per family name, its ``Family``
    (``meta``) and the target's sample lines for it (``lines``). Not modified once built.

    Two flat dicts rather than an object per family, because of the garbage
    collector: per-family snapshot objects were most of what it tracked, and each
    full collection stalls scrapes for as long as it walks them. ``lines``
    holds only str and bytes, which the collector does not track, and it is all the
    store keeps of a snapshot (``Family`` objects are shared between polls), with
    ``plain``.

    ``plain``: for each family with a sample whose own labels cannot be read back from
    its line (``reversible``), the family's lines as they are with no target labels
    (every series, in order, none renamed); ``relabel`` starts from these. A sample's
    label with a target label's name is written ``exported_<name>``, which reads back
    as ``<name>``; only a label the vendor named ``exported_<name>`` itself (or a
    renaming that went more than one level) or an empty label that gave way cannot be
    read back, and two samples written as one series are among these. Nearly every
    target has none, a target label that clashes with a vendor's on every series
    included.
    """

    __slots__ = ("filtered", "lines", "meta", "plain")

    def __init__(
        self,
        meta: dict[str, Family] | None = None,
        lines: dict[str, bytes] | None = None,
        filtered: int = 0,
        plain: Mapping[str, bytes] | None = None,
    ) -> None:
        self.meta: dict[str, Family] = meta if meta is not None else {}
        self.lines: dict[str, bytes] = lines if lines is not None else {}
        # Samples the target's metric filter removed from this poll's result.
        self.filtered = filtered
        self.plain: Mapping[str, bytes] = plain or _NO_PLAIN

    @property
    def series(self) -> int:
        # Each sample is one line; label values and help text have their newlines escaped.
        return sum(chunk.count(b"\n") for chunk in self.lines.values())


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    """Format a float as Prometheus parses it (Go's strconv forms for the specials)."""
    value = float(value)  # translators may hand over ints; render them the same way
    if value.is_integer():
        # Whole numbers print without ".0"; from 1e15 on as repr gives them.
        if -1e15 < value < 1e15:
            return str(int(value))
        return repr(value)
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def format_labels(labels: Labels) -> str:
    return join_labels(labels, _NO_NAMES, "") or ""


def valid_metric_name(name: str) -> bool:
    return bool(_METRIC_NAME_RE.match(name))


def render(
    samples: Collection[Sample],
    *,
    extra: Labels = (),
    keep: Callable[[str], bool] | None = None,
) -> Rendered:
    """Render samples into per-family bytes.

    ``extra`` labels (a target's account and configured labels) follow each sample's
    own labels; a sample label with the name of one of them is renamed as Prometheus
    renames a scraped label that clashes with a target label (``exported_names``).
    ``keep`` says by family name which families stay; the samples of the others are
    counted in ``Rendered.filtered``.

    Two samples with the same family name but a different type or help are a
    programming error in a translator, and raise, so the bug shows in tests. Of two
    samples that would make the same series (the same name and label text), the
    first is kept and the rest dropped, because a duplicate series makes Prometheus
    reject the whole scrape.
    """
    taken, tail = extra_parts(extra)
    return _render(samples, taken, watched(taken), tail, keep, {}, None)


class Renderer:
    """``render`` for a target whose label sets come back every poll (its health, see
    ``exporter.engine.health``): made once, with the target's extra labels and filter.

    It keeps the text of each label set it wrote (at most ``REMEMBERED`` of them, then
    it starts over) and the filter's verdict per family name, so that a poll formats
    only the values.
    """

    __slots__ = ("_keep", "_kept", "_tail", "_taken", "_texts", "_watch")

    REMEMBERED = 64

    def __init__(self, extra: Labels = (), keep: Callable[[str], bool] | None = None) -> None:
        self._taken, self._tail = extra_parts(extra)
        self._watch = watched(self._taken)
        self._keep = keep
        self._kept: dict[str, bool] = {}
        self._texts: dict[Labels, str] = {}

    def render(self, samples: Collection[Sample]) -> Rendered:
        if len(self._texts) > self.REMEMBERED:
            self._texts.clear()
        return _render(samples, self._taken, self._watch, self._tail, self._keep, self._kept, self._texts)


def _render(
    samples: Collection[Sample],
    taken: frozenset[str],
    watch: frozenset[str],
    tail: str,
    keep: Callable[[str], bool] | None,
    kept: dict[str, bool],
    texts: dict[Labels, str] | None,
) -> Rendered:
    """``render``'s work; ``kept`` and ``texts`` remember the filter's verdicts and the
    label sets' text (none when ``texts`` is None) for whoever passes them again;
    ``watch`` is ``watched(taken)``."""
    meta: dict[str, Family] = {}
    grouped: dict[str, list[str]] = {}
    seen: set[str] = set()
    ambiguous: set[str] = set()
    filtered = 0
    for s in samples:
        fam = s.family
        name = fam.name
        if keep is not None:
            stays = kept.get(name)
            if stays is None:
                stays = kept[name] = keep(name)
            if not stays:
                filtered += 1
                continue
        known = meta.get(name)
        if known is None:
            meta[name] = fam
            grouped[name] = []
        elif known is not fam and known != fam:
            raise ValueError(f"family {name!r} declared twice with different metadata")
        if texts is None:
            text = join_labels(s.labels, watch, tail)
        else:
            text = texts.get(s.labels)
            if text is None:
                text = join_labels(s.labels, watch, tail)
                if text is not None:
                    texts[s.labels] = text
        if text is None:
            text, exact = join_clashing(s.labels, taken, tail)
            if not exact:
                ambiguous.add(name)
        series = f"{name}{s.suffix}{text}"
        if series in seen:
            continue
        seen.add(series)
        grouped[name].append(f"{series} {format_value(s.value)}\n")
    chunks = {name: "".join(lines).encode() for name, lines in grouped.items()}
    return Rendered(meta, chunks, filtered, _plain(samples, ambiguous) if ambiguous else None)


def _plain(samples: Collection[Sample], families: set[str]) -> dict[str, bytes]:
    """The lines of ``families`` with no extra labels (``Rendered.plain``): every series,
    the first sample of each, as ``render`` keeps the first whatever the extra labels."""
    grouped: dict[str, list[str]] = {name: [] for name in families}
    seen: set[str] = set()
    for s in samples:
        name = s.family.name
        lines = grouped.get(name)
        if lines is not None:
            series = f"{name}{s.suffix}{format_labels(s.labels)}"
            if series not in seen:
                seen.add(series)
                lines.append(f"{series} {format_value(s.value)}\n")
    return {name: "".join(lines).encode() for name, lines in grouped.items()}


def extra_parts(extra: Labels) -> tuple[frozenset[str], str]:
    """The names of the ``extra`` labels and their text as ``join_labels`` takes them."""
    return frozenset(k for k, _ in extra), format_labels(extra)[1:-1]


def join_labels(labels: Labels, watch: frozenset[str], tail: str) -> str | None:
    """A sample's label set in braces, or nothing for no labels: its own ``labels``, then
    ``tail`` (the extra labels, formatted); None if one of ``labels`` has a name in
    ``watch`` (``watched`` of the extra labels' names: ``join_clashing`` writes those).

    Every sample of every poll goes through here: a value is escaped only when it holds
    a character that needs it, which few do.
    """
    parts = []
    for k, v in labels:
        if k in watch:
            return None
        if "\\" in v or '"' in v or "\n" in v:
            v = escape_label_value(v)
        parts.append(f'{k}="{v}"')
    if tail:
        parts.append(tail)
    return "{" + ",".join(parts) + "}" if parts else ""


def join_clashing(labels: Labels, taken: frozenset[str], tail: str) -> tuple[str, bool]:
    """``join_labels`` for labels that ``watched(taken)`` names: renamed or left out as
    ``exported_names`` says; and whether they can be read back (``reversible``)."""
    own = [k for k, _ in labels]
    names = exported_names(own, [not v for _, v in labels], taken)
    parts = [f'{new}="{escape_label_value(v)}"' for (_, v), new in zip(labels, names, strict=True) if new]
    if tail:
        parts.append(tail)
    return ("{" + ",".join(parts) + "}" if parts else ""), reversible(own, names, taken)
