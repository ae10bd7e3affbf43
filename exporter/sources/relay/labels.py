"""A relayed sample's labels joined with the target's, as Prometheus joins them with
``honor_labels: false``.

Prometheus sets every target label on a scraped sample; a scraped label of the same
name with a non-empty value is kept as ``exported_<name>``, or ``exported_exported_<name>``
if that name is taken too, and so on; one with an empty value gives way
(``exporter.core.clash.exported_names``, the rule every source's samples are
rendered by).

Most samples of a body share a few label *shapes*: the label names in order, and
which values are empty. :func:`skeleton` gives a line's shape with one substitution
in C, and :func:`plan` works out once per shape whether its labels are valid and
what becomes of each of them; a line whose shape needs nothing (no clash, nothing too
long) is then passed on as written, with the target's labels after its own.

Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from exporter.core.clash import exported_names, reversible, watched
from exporter.sources.relay.lines import PAIRS, LineError, unescaped_length

# A non-empty quoted value after its "=", which the skeleton leaves out: a pair start
# is the only place "=" stands before an unescaped quote.
VALUES = re.compile(r'="(?=[^"])[^"\\]*(?:\\.[^"\\]*)*"')


class Plan(NamedTuple):
    """What becomes of each of a shape's labels, in order: its new name, or None when
    it is left out (an empty value that gives way); and whether they can be read back
    from the text (``exporter.core.clash.reversible``), as most can."""

    names: tuple[str | None, ...]
    exact: bool


class _TooLong:
    """A shape with a label name longer than the limit: its samples are dropped and counted."""


TOO_LONG: Final = _TooLong()
Shape = Plan | _TooLong | None


def skeleton(labels: str) -> str:
    """A canonical label text with its non-empty values left out: ``a=,b="",c=``."""
    return VALUES.sub("=", labels)


def plan(skel: str, extra: frozenset[str], max_length: int) -> Shape:
    """What a shape's labels become beside the target's labels (named ``extra``): None
    when they stay as they are and read back as they are, ``TOO_LONG`` when a name is
    longer than ``max_length``, else a ``Plan``. Two labels of one name, or a name
    Prometheus reserves (``__…``), make the line invalid (``LineError``)."""
    if not skel:
        return None
    names: list[str] = []
    empty: list[bool] = []
    for part in skel.split(","):
        name, _, rest = part.partition("=")
        names.append(name)
        empty.append(rest == '""')
    if len(set(names)) != len(names):
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        raise LineError(f"label {twice} appears twice in one sample")
    for name in names:
        if name.startswith("__"):
            raise LineError(f"label name {name} is reserved for Prometheus' own use (it starts with __)")
    if any(len(n) > max_length for n in names):
        return TOO_LONG
    if watched(extra).isdisjoint(names):
        return None
    renamed = exported_names(names, empty, extra)
    return Plan(renamed, reversible(names, renamed, extra))


def apply(labels: str, shape: Plan) -> str:
    """A canonical label text with its labels renamed or left out as ``shape`` says."""
    return ",".join(
        f"{new}={value}"
        for (_, value), new in zip(PAIRS.findall(labels), shape.names, strict=True)
        if new is not None
    )


def longest_value(labels: str) -> int:
    """The length of the longest value of a canonical label text, escapes undone."""
    return max((unescaped_length(v) for _, v in PAIRS.findall(labels)), default=0)
