"""Prometheus text exposition (format 0.0.4) for samples we produce ourselves.

Rendering happens once per poll, not once per scrape: a poll turns its samples into
bytes per family, and a scrape only joins those bytes. That is why this module works
on plain tuples and bytes instead of prometheus_client's metric objects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

MetricType = Literal["gauge", "counter", "summary", "histogram", "untyped"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

Labels = tuple[tuple[str, str], ...]
_NO_NAMES: frozenset[str] = frozenset()


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
    store keeps of a snapshot (``Family`` objects are shared between polls).
    """

    __slots__ = ("filtered", "lines", "meta")

    def __init__(
        self,
        meta: dict[str, Family] | None = None,
        lines: dict[str, bytes] | None = None,
        filtered: int = 0,
    ) -> None:
        self.meta: dict[str, Family] = meta if meta is not None else {}
        self.lines: dict[str, bytes] = lines if lines is not None else {}
        # Samples the target's metric filter removed from this poll's result.
        self.filtered = filtered

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
    return join_labels(labels, _NO_NAMES, "")


def valid_metric_name(name: str) -> bool:
    return bool(_METRIC_NAME_RE.match(name))


def render(
    samples: Iterable[Sample],
    *,
    extra: Labels = (),
    keep: Callable[[str], bool] | None = None,
) -> Rendered:
    """Render samples into per-family bytes.

    ``extra`` labels (a target's account and configured labels) follow each sample's
    own labels; a sample label with the name of one of them is renamed
    ``exported_<name>``, as Prometheus does when a target label clashes with a
    scraped one. ``keep`` says by family name which families stay; the samples of
    the others are counted in ``Rendered.filtered``.

    Two samples with the same family name but a different type or help are a
    programming error in a translator, and raise, so the bug shows in tests. Of two
    samples that would make the same series (the same name and label text), the
    first is kept and the rest dropped, because a duplicate series makes Prometheus
    reject the whole scrape.
    """
    taken, tail = extra_parts(extra)
    return _render(samples, taken, tail, keep, {}, None)


class Renderer:
    """``render`` for a target whose label sets come back every poll (its health, see
    ``exporter.engine.health``): made once, with the target's extra labels and filter.

    It keeps the text of each label set it wrote (at most ``REMEMBERED`` of them, then
    it starts over) and the filter's verdict per family name, so that a poll formats
    only the values.
    """

    __slots__ = ("_keep", "_kept", "_tail", "_taken", "_texts")

    REMEMBERED = 64

    def __init__(self, extra: Labels = (), keep: Callable[[str], bool] | None = None) -> None:
        self._taken, self._tail = extra_parts(extra)
        self._keep = keep
        self._kept: dict[str, bool] = {}
        self._texts: dict[Labels, str] = {}

    def render(self, samples: Iterable[Sample]) -> Rendered:
        if len(self._texts) > self.REMEMBERED:
            self._texts.clear()
        return _render(samples, self._taken, self._tail, self._keep, self._kept, self._texts)


def _render(
    samples: Iterable[Sample],
    taken: frozenset[str],
    tail: str,
    keep: Callable[[str], bool] | None,
    kept: dict[str, bool],
    texts: dict[Labels, str] | None,
) -> Rendered:
    """``render``'s work; ``kept`` and ``texts`` remember the filter's verdicts and the
    label sets' text (none when ``texts`` is None) for whoever passes them again."""
    meta: dict[str, Family] = {}
    grouped: dict[str, list[str]] = {}
    seen: set[str] = set()
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
            text = join_labels(s.labels, taken, tail)
        else:
            remembered = texts.get(s.labels)
            if remembered is None:
                remembered = texts[s.labels] = join_labels(s.labels, taken, tail)
            text = remembered
        series = f"{name}{s.suffix}{text}"
        if series in seen:
            continue
        seen.add(series)
        grouped[name].append(f"{series} {format_value(s.value)}\n")
    return Rendered(meta, {name: "".join(lines).encode() for name, lines in grouped.items()}, filtered)


def extra_parts(extra: Labels) -> tuple[frozenset[str], str]:
    """The names of the ``extra`` labels and their text as ``join_labels`` takes them."""
    return frozenset(k for k, _ in extra), format_labels(extra)[1:-1]


# One label pair as ``join_labels`` writes it: a name, and a value with its escapes.
_PAIR = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def relabel(lines: dict[str, bytes], old: Labels, new: Labels) -> dict[str, bytes]:
    """Lines ``render`` made with ``extra=old`` as it makes them with ``extra=new``.

    The extra labels end every label set. When only their values change, each line's
    old text, between a ``,`` or ``{`` and the closing ``} ``, is found and replaced in
    one pass over the chunk: it cannot occur anywhere else, since every ``"`` inside
    a value is escaped and a sample's own label with an extra one's name has been
    renamed. When their names change, the lines are parsed, so that the own labels
    renamed ``exported_<name>`` follow the new names too.
    """
    if old == new:
        return lines
    old_taken, old_tail = extra_parts(old)
    new_taken, new_tail = extra_parts(new)
    if old_taken != new_taken:
        return {
            name: b"".join(
                _relabel_line(line, len(old), old_taken, new_taken, new_tail)
                for line in chunk.splitlines(True)
            )
            for name, chunk in lines.items()
        }
    swaps = [(f"{edge}{old_tail}}} ".encode(), f"{edge}{new_tail}}} ".encode()) for edge in ",{"]
    out = {}
    for name, chunk in lines.items():
        for before, after in swaps:
            chunk = chunk.replace(before, after)
        out[name] = chunk
    return out


def _relabel_line(
    line: bytes, extras: int, old_taken: frozenset[str], new_taken: frozenset[str], tail: str
) -> bytes:
    """One line of ``relabel`` when the extra labels' names change; a line that is not
    what ``render`` makes is left as it is."""
    brace = line.find(b"{")
    if brace < 0:
        return line
    pairs: list[re.Match[bytes]] = []
    pos = brace + 1
    while (pair := _PAIR.match(line, pos)) is not None:
        pairs.append(pair)
        pos = pair.end() + 1
        if line[pair.end() : pos] != b",":
            break
    if not pairs or line[pos - 1 : pos] != b"}" or len(pairs) < extras:
        return line
    parts = []
    for pair in pairs[: len(pairs) - extras]:
        key = pair.group(1).decode()
        if key.startswith("exported_") and key[9:] in old_taken:
            key = key[9:]
        if key in new_taken:
            key = "exported_" + key
        parts.append(key.encode() + b'="' + pair.group(2) + b'"')
    if tail:
        parts.append(tail.encode())
    return line[:brace] + b"{" + b",".join(parts) + b"}" + line[pos:]


def join_labels(labels: Labels, taken: frozenset[str], tail: str) -> str:
    """A sample's label set in braces, or nothing for no labels: its own ``labels``, then
    ``tail`` (the extra labels, formatted, whose names are ``taken``); an own label with
    an extra one's name becomes ``exported_<name>``.

    Every sample of every poll goes through here: a value is escaped only when it holds
    a character that needs it, which few do.
    """
    parts = []
    for k, v in labels:
        if k in taken:
            k = "exported_" + k
        if "\\" in v or '"' in v or "\n" in v:
            v = escape_label_value(v)
        parts.append(f'{k}="{v}"')
    if tail:
        parts.append(tail)
    return "{" + ",".join(parts) + "}" if parts else ""
