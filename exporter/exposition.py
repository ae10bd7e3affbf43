"""Prometheus text exposition (format 0.0.4) for samples we produce ourselves.

Rendering happens once per poll, not once per scrape: a poll turns its samples into
bytes per family, and a scrape only joins those bytes. That is why this module works
on plain tuples and bytes instead of prometheus_client's metric objects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["gauge", "counter", "summary", "untyped"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Family:
    """Name, type and help of one metric family.

    ``name`` is the full sample name: counters carry their ``_total`` suffix here, as
    the text format's ``# TYPE`` line for a counter names the sample.
    """

    name: str
    type: MetricType
    help: str

    def __post_init__(self) -> None:
        if not valid_metric_name(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        if self.type != "counter" and self.name.endswith("_total"):
            raise ValueError(f"only counters may end in _total: {self.name!r}")

    def header(self) -> bytes:
        return f"# HELP {self.name} {escape_help(self.help)}\n# TYPE {self.name} {self.type}\n".encode()


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a family. Labels are kept in the order given."""

    family: Family
    labels: Labels
    value: float


@dataclass(frozen=True, slots=True)
class RenderedFamily:
    """A family's header plus the rendered sample lines that one target contributes."""

    family: Family
    lines: bytes
    series: int


@dataclass(frozen=True, slots=True)
class Rendered:
    """All families one target contributes, rendered, keyed by family name."""

    families: Mapping[str, RenderedFamily] = field(default_factory=dict)

    @property
    def series(self) -> int:
        return sum(f.series for f in self.families.values())


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    """Format a float as Prometheus parses it (Go's strconv forms for the specials)."""
    value = float(value)  # translators may hand over ints; render them the same way
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
    return "{" + inner + "}"


def valid_metric_name(name: str) -> bool:
    return bool(_METRIC_NAME_RE.match(name))


def render(samples: Iterable[Sample]) -> Rendered:
    """Render samples into per-family bytes.

    Two samples with the same family name but a different type or help are a
    programming error in a translator, and raise, so the bug shows in tests.
    Duplicate label sets in one family keep the first and drop the rest, because a
    duplicate series makes Prometheus reject the whole scrape.
    """
    grouped: dict[str, tuple[Family, list[str], set[Labels]]] = {}
    for s in samples:
        entry = grouped.get(s.family.name)
        if entry is None:
            entry = (s.family, [], set())
            grouped[s.family.name] = entry
        elif entry[0] != s.family:
            raise ValueError(f"family {s.family.name!r} declared twice with different metadata")
        if s.labels in entry[2]:
            continue
        entry[2].add(s.labels)
        entry[1].append(f"{s.family.name}{format_labels(s.labels)} {format_value(s.value)}\n")
    return Rendered(
        {
            name: RenderedFamily(fam, "".join(lines).encode(), len(lines))
            for name, (fam, lines, _) in grouped.items()
        }
    )


def assemble(parts: Iterable[Rendered]) -> bytes:
    """Join many targets' rendered families so each family has one HELP/TYPE header."""
    by_family: dict[str, tuple[Family, list[bytes]]] = {}
    for part in parts:
        for name, rf in part.families.items():
            entry = by_family.get(name)
            if entry is None:
                by_family[name] = (rf.family, [rf.lines])
            elif entry[0].type == rf.family.type:
                entry[1].append(rf.lines)
            # A family declared with two types by two sources would make the whole
            # scrape invalid; the later one is dropped (a translator bug, caught in tests).
    out: list[bytes] = []
    for name in sorted(by_family):
        fam, chunks = by_family[name]
        out.append(fam.header())
        out.extend(chunks)
    return b"".join(out)


def merge(parts: Iterable[Rendered]) -> Rendered:
    """Combine several Rendered values of one target into one."""
    families: dict[str, RenderedFamily] = {}
    for part in parts:
        for name, rf in part.families.items():
            prev = families.get(name)
            if prev is None:
                families[name] = rf
            else:
                families[name] = RenderedFamily(prev.family, prev.lines + rf.lines, prev.series + rf.series)
    return Rendered(families)
