"""A reload's new target labels applied to what a target last rendered, at once and
without its samples: ``Scope.restyle`` relies on it so that a reload does not wait for
each target's next poll."""

from __future__ import annotations

import re

from exporter.core.clash import exported_names, own_lines, reversible, watched
from exporter.core.exposition import Labels, Rendered, extra_parts

# One label pair as ``join_labels`` writes it: a name, and a value with its escapes.
_PAIR = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def relabel(rendered: Rendered, old: Labels, new: Labels) -> Rendered:
    """``rendered``, made with ``extra=old``, as made with ``extra=new``: by ``render``,
    or by a relay, which writes and renames labels alike.

    The extra labels end every label set. When only their values change, each line's
    old text, between a ``,`` or ``{`` and the closing ``} ``, is found and replaced in
    one pass over the chunk: it cannot occur anywhere else, since every ``"`` inside
    a value is escaped, and the same names rename the same labels. When their names
    change, each family is rendered again from its lines with no extra labels: its
    ``plain`` lines if it has them, else its lines read back (``own_lines``).
    """
    if old == new:
        return rendered
    old_taken, old_tail = extra_parts(old)
    new_taken, new_tail = extra_parts(new)
    if old_taken == new_taken:
        swaps = [(f"{edge}{old_tail}}} ".encode(), f"{edge}{new_tail}}} ".encode()) for edge in ",{"]
        out = {}
        for name, chunk in rendered.lines.items():
            for before, after in swaps:
                chunk = chunk.replace(before, after)
            out[name] = chunk
        return Rendered(rendered.meta, out, rendered.filtered, rendered.plain)
    new_watch = watched(new_taken)
    lines: dict[str, bytes] = {}
    plain: dict[str, bytes] = {}
    seen: set[bytes] = set()
    for name, chunk in rendered.lines.items():
        source = rendered.plain.get(name)
        if source is None:
            source = own_lines(chunk, old_taken, old_tail)
        out_lines: list[bytes] = []
        exact = True
        for line in source.splitlines(True):
            series, value, back = _extend(line, new_taken, new_watch, new_tail)
            exact = exact and back
            if series not in seen:
                seen.add(series)
                out_lines.append(series + value)
        lines[name] = b"".join(out_lines)
        if not exact:
            plain[name] = source
    return Rendered(rendered.meta, lines, rendered.filtered, plain)


def _extend(
    line: bytes, taken: frozenset[str], watch: frozenset[str], tail: str
) -> tuple[bytes, bytes, bool]:
    """A line with no extra labels as ``render`` writes it with extra labels named
    ``taken`` (``watch`` is ``watched(taken)``) and written ``tail``: its series, the rest
    (`` <value>\\n``), and whether its labels can be read back (``reversible``)."""
    # A name holds no " " or "{": the first "{" before the first " " opens the labels.
    brace = line.find(b"{", 0, line.index(b" "))
    pairs: list[re.Match[bytes]] = []
    if brace < 0:
        brace = end = line.index(b" ")
    else:
        end = brace + 1
        while (pair := _PAIR.match(line, end)) is not None:
            pairs.append(pair)
            end = pair.end() + 1
            if line[pair.end() : end] != b",":
                break
    head, rest = line[:brace], line[end:]
    names = [p.group(1).decode() for p in pairs]
    back = True
    if watch.isdisjoint(names):
        parts = [p.group(0) for p in pairs]
    else:
        renamed = exported_names(names, [p.end(2) == p.start(2) for p in pairs], taken)
        back = reversible(names, renamed, taken)
        parts = [
            new.encode() + p.group(0)[p.end(1) - p.start() :]
            for p, new in zip(pairs, renamed, strict=True)
            if new
        ]
    if tail:
        parts.append(tail.encode())
    return (head + b"{" + b",".join(parts) + b"}" if parts else head), rest, back
