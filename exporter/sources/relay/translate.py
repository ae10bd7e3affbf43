"""A vendor's Prometheus text (format 0.0.4) as a target's rendered families: read,
checked, relabelled and rendered in one pass over its lines.

What is kept of a body, and why:

- **families** as declared by ``# HELP`` and ``# TYPE`` (one of each per name, before
  the family's samples), with the vendor's HELP text; a family without HELP gets one
  saying so, samples of no declared family make an ``untyped`` family of their own
  name (as Prometheus' parser reads them). Every relayed family is one block with one
  HELP and one TYPE, however its samples were spread over the body;
- **histograms and summaries**: ``x_bucket`` (which must carry a numeric ``le``),
  ``x_sum``, ``x_count`` and ``x_created`` belong to histogram ``x``; ``x`` (with a
  numeric ``quantile``), ``x_sum``, ``x_count`` and ``x_created`` to summary ``x``;
  ``x_created`` to counter ``x_total``. A ``_created`` series the vendor declares as a
  family of its own (as prometheus_client writes them) is relayed as that gauge; a
  family of its own named ``x_bucket``, ``x_sum`` or ``x_count`` beside histogram or
  summary ``x`` (declared, or met in samples before ``x``'s TYPE) makes the body
  invalid, since every reader of the exposition would take it for ``x``'s;
- **values** exactly as written, and label values with their escapes as written; a
  value (or ``le``, ``quantile``) past a float64's range makes the body invalid, as it
  makes Prometheus fail the whole scrape;
- **timestamps are dropped**. A relay serves one body to every scrape for an interval
  (and, while the vendor rate-limits, for longer): with the vendor's timestamps the
  samples would carry no staleness marker when a series ends, arrive out of order or
  too old after a clock skew, and repeat one timestamp across scrapes. Without them
  each scrape stamps what it reads, as for every other source of the exporter; how old
  the body is shows in the target's health. The count dropped is in ``Relayed.timestamps``;
- **exemplars** and everything else of OpenMetrics (``# EOF``, its extra types) make
  the body invalid: the relay asks for the text format 0.0.4, and an OpenMetrics body
  read as one would misread its counters' names and its timestamps (seconds, not
  milliseconds), so the reason says which format came instead.

Duplicates: a series written twice (same name and label text) keeps its first sample,
as Prometheus does, and is counted. Limits (each with a reason naming the config key):
more series than the scope's ``max_series`` (a relay's own ``max_series``, named by
``RelayRules.series_key``; counted after the metric filter: denied families cost
nothing but their reading) fail the poll with ``too_many_series``, and more families
than that (declared or met, kept or not: each costs memory) with ``too_many_families``;
a sample with a label name or value, or a name, longer than ``max_label_value_length``
is dropped and counted, and so is a line longer than ``body.max_line_bytes`` of that, left
out unread; the body's size is bounded where it is read (``max_response_bytes``).
Anything else malformed fails the poll with ``invalid_response`` and a detail giving
the line number and what is wrong.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping
from typing import Final

from exporter.core.clash import own_lines
from exporter.core.errors import InvalidResponse, LimitExceeded
from exporter.core.exposition import Family, MetricType, Rendered, extra_parts
from exporter.core.scope import MAX_SERIES_KEY, Scope
from exporter.sources.relay.body import OVERLONG, max_line_bytes, pieces
from exporter.sources.relay.labels import TOO_LONG, Plan, Shape, apply, longest_value, plan, skeleton
from exporter.sources.relay.lines import (
    CANONICAL,
    Form,
    LineError,
    form,
    number,
    quote,
    read_meta,
    read_sample,
)
from exporter.sources.relay.names import RelayedFamily, in_namespaces
from exporter.sources.relay.rules import DEFAULT_RULES, FamilyKey, Relayed, RelayRules

NO_HELP = "Relayed from the vendor's endpoint, which sent no HELP for it."
# How many reserved families a result names (the count is always whole).
_NAMED_RESERVED = 10
_MISSING: Final = object()
# Label shapes one body may have a form compiled for: a real body has a few dozen.
MAX_FORMS = 64
# Most labels of a shape a form is compiled for: compiling takes time that grows faster
# than the number of labels (half a second for a thousand), and real shapes have a few.
MAX_FORM_LABELS = 32
# What a sample's labels must carry: nothing more, a numeric le, a numeric quantile.
_ANY, _LE, _QUANTILE = 0, 1, 2
_BOUND = {
    _LE: re.compile(r'(?:^|,)le="([^"\\]*(?:\\.[^"\\]*)*)"'),
    _QUANTILE: re.compile(r'(?:^|,)quantile="([^"\\]*(?:\\.[^"\\]*)*)"'),
}
_BOUND_NAME = {_LE: "le", _QUANTILE: "quantile"}
_HS = ("histogram", "summary")
# The names of a histogram's or summary's series that readers of the text format take for
# it, whatever follows (``x_created`` is none: prometheus_client declares it as a gauge).
_SERIES_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
_BY_SUFFIX = (
    ("_bucket", ("histogram",), _LE),
    ("_count", _HS, _ANY),
    ("_sum", _HS, _ANY),
    ("_created", _HS, _ANY),
)


class _Family:
    """A family while the body is read: its declaration, and the lines it keeps."""

    __slots__ = ("help", "keep", "lines", "name", "plain", "reserved", "skipped", "type", "typed")

    def __init__(self, name: str) -> None:
        self.name = name
        self.type: str = "untyped"
        self.typed = False
        self.help: str | None = None
        # Decided when its first sample comes (None until then).
        self.keep: bool | None = None
        self.reserved = False
        # Its lines, each encoded as it is made: the body is never held as text, and
        # the family's bytes are joined from them in one allocation of their size.
        self.lines: list[bytes] = []
        self.skipped = 0
        # From its first line whose labels cannot be read back from the text once the
        # target labels are added (``Plan.exact``): every line, none renamed and without
        # the target labels (``Rendered.plain``).
        self.plain: list[bytes] | None = None


def relay(
    body: bytes,
    scope: Scope,
    rules: RelayRules = DEFAULT_RULES,
    known: Mapping[FamilyKey, Family] | None = None,
) -> Relayed:
    """``body`` relayed for a target of ``scope`` (its labels, filter and series limit).

    ``known``: the families of the last body, by (name, type, help), reused when they
    are unchanged so that a poll makes no new family objects. Raises InvalidResponse
    for a malformed body, LimitExceeded when it has too many series."""
    steps = relay_in_steps(body, scope, rules, known)
    try:
        while True:
            next(steps)
    except StopIteration as done:
        result: Relayed = done.value
        return result


def relay_in_steps(
    body: bytes,
    scope: Scope,
    rules: RelayRules = DEFAULT_RULES,
    known: Mapping[FamilyKey, Family] | None = None,
) -> Generator[None, None, Relayed]:
    """:func:`relay` a piece of the body (``body.PIECE_BYTES``) at a time: the generator
    yields after each and returns what ``relay`` returns. Reading a body of the largest
    size allowed, made of the lines slowest to read, takes seconds: a caller on an
    event loop lets the loop serve scrapes between the pieces, and can give up (a
    poll's deadline) at any of them."""
    return _Reader(scope, rules).read(body, known or {})


def _error(lineno: int, line: str, what: str) -> InvalidResponse:
    return InvalidResponse(f"line {lineno}: {what}: {quote(line)}")


class _Reader:
    """The state of one body's reading: its families, how each sample name is routed
    to one, the label shapes met, the forms their lines take, the series seen."""

    def __init__(self, scope: Scope, rules: RelayRules) -> None:
        self.scope = scope
        self.rules = rules
        self.keep = scope.filter.keeps if scope.filter.active else None
        self.extra, self.tail = extra_parts(scope.extra)
        self.families: dict[str, _Family] = {}
        # Sample name → (family, name to write, what its labels must carry).
        self.routes: dict[str, tuple[_Family, str, int]] = {}
        self.shapes: dict[str, Shape] = {}
        # Sample name → the form its last line took, for kept families and shapes that
        # need nothing; forms by label names (at most MAX_FORMS).
        self.forms: dict[str, Form] = {}
        self.compiled: dict[tuple[str, ...], Form | None] = {}
        self.bounds: dict[str, bool] = {}
        self.too_long = self.timestamps = 0
        # Where samples whose name is too long go: left out, and counted as too long.
        self.overlong = _Family("")
        self.overlong.keep = False

    def read(self, body: bytes, known: Mapping[FamilyKey, Family]) -> Generator[None, None, Relayed]:
        """Every line of the body, yielding after each piece. A line of a kept family whose
        name and label names were met before (nearly all of them) takes the first branch:
        one match of its form, one dictionary look-up for the series, one formatted line."""
        forms = self.forms
        routes = self.routes
        bounds = self.bounds
        # Series seen, by a 128-bit fingerprint of their name and labels as written out:
        # two hashes keyed independently (Python's SipHash, seeded per process), so that
        # two series are taken for one with a chance of about n² / 2¹²⁹, and the set
        # holds small integers rather than every label text until the body is read.
        seen: set[int] = set()
        tail = self.tail
        max_length = self.rules.max_label_length
        limit = self.scope.max_series
        kept = duplicates = timestamps = 0
        for before, lines in pieces(body, max_line_bytes(max_length)):
            for lineno, line in enumerate(lines, before + 1):
                brace = line.find("{")
                name = line[:brace] if brace > 0 else ""
                form = forms.get(name)
                match = form(line, brace) if form is not None else None
                if match is not None:
                    labels, le, quantile, value, stamp = match.groups()
                    family, out, bound = routes[name]
                    if stamp is not None:
                        timestamps += 1
                    if len(labels) > max_length and longest_value(labels) > max_length:
                        self.too_long += 1
                        continue
                    if bound and not bounds.get(le if bound == _LE else quantile):
                        self._bound(bound, labels, lineno, line)
                    new = f"{out}{{{labels},{tail}}} {value}\n".encode()
                else:
                    got = self._general(line, lineno)
                    if got is None:
                        continue
                    family, name, labels, new = got
                size = len(seen)
                seen.add(hash((name, labels)) ^ (hash(labels + name) << 64))
                if len(seen) == size:
                    duplicates += 1
                    continue
                family.lines.append(new)
                kept += 1
                if kept > limit:
                    raise self._too_many(limit)
            yield
        return self._result(known, duplicates, self.timestamps + timestamps)

    def _general(self, line: str, lineno: int) -> tuple[_Family, str, str, bytes] | None:
        """Any line the first branch of ``read`` does not take: its family, name, labels as
        written out and text; None for a line that adds no sample (blank, a comment,
        metadata, a sample left out)."""
        if line == OVERLONG:
            self.too_long += 1
            return None
        match = CANONICAL.fullmatch(line)
        if match is not None:
            name, labels, value, stamp = match.groups()
        else:
            first = line.lstrip(" \t\r")
            if not first:
                return None
            try:
                if first[0] == "#":
                    self._meta(line)
                    return None
                name, labels, value, stamp = read_sample(line)
            except LineError as exc:
                raise _error(lineno, line, str(exc)) from None
        family, out, bound = self.routes.get(name) or self._route(name, lineno, line)
        if not family.keep:
            family.skipped += 1
            return None
        if stamp is not None:
            self.timestamps += 1
        if not labels:
            if bound:
                raise _error(lineno, line, f"{name} has no {_BOUND_NAME[bound]} label")
            if family.plain is not None:
                family.plain.append(f"{out} {value}\n".encode())
            return family, name, "", f"{out}{{{self.tail}}} {value}\n".encode()
        skel = skeleton(labels)
        shape = self.shapes.get(skel, _MISSING)
        if shape is _MISSING:
            shape = self._shape(skel, lineno, line)
        max_length = self.rules.max_label_length
        if shape is TOO_LONG or (len(labels) > max_length and longest_value(labels) > max_length):
            self.too_long += 1
            return None
        if bound:
            self._bound(bound, labels, lineno, line)
        if isinstance(shape, Plan) and not shape.exact and family.plain is None:
            self._keep_plain(family)
        if family.plain is not None:
            family.plain.append(f"{out}{{{labels}}} {value}\n".encode())
        if isinstance(shape, Plan):
            labels = apply(labels, shape)
        elif family.plain is None:
            self._remember_form(name, skel)
        if not labels:
            return family, name, "", f"{out}{{{self.tail}}} {value}\n".encode()
        return family, name, labels, f"{out}{{{labels},{self.tail}}} {value}\n".encode()

    def _keep_plain(self, family: _Family) -> None:
        """Start ``family.plain`` from the lines it has, all of which can be read back,
        and send its later lines through ``_general``, which adds them to it."""
        family.plain = [own_lines(b"".join(family.lines), self.extra, self.tail)]
        for name in [n for n in self.forms if self.routes[n][0] is family]:
            del self.forms[name]

    def _remember_form(self, name: str, skel: str) -> None:
        names = tuple(part.partition("=")[0] for part in skel.split(","))
        if len(names) > MAX_FORM_LABELS:
            return
        matcher = self.compiled.get(names, _MISSING)
        if matcher is _MISSING:
            if len(self.compiled) >= MAX_FORMS:
                return
            matcher = self.compiled[names] = form(names)
        if matcher is not None:
            self.forms[name] = matcher  # type: ignore[assignment]

    def _meta(self, line: str) -> None:
        meta = read_meta(line)
        if meta is None:
            return
        if meta.name in self.routes:
            raise LineError(
                f"# {meta.kind} for {meta.name} comes after samples named {meta.name}: "
                "a family's HELP and TYPE come before its samples"
            )
        family = self.families.get(meta.name)
        if family is None:
            self._not_a_series(meta.name)
            family = self.families[meta.name] = self._new_family(meta.name)
        if meta.kind == "TYPE":
            if family.typed:
                raise LineError(f"a second # TYPE line for {meta.name}")
            for suffix in _SERIES_SUFFIXES.get(meta.text, ()):
                if meta.name + suffix in self.families:
                    raise LineError(
                        f"{meta.name}{suffix} comes before # TYPE {meta.name} {meta.text}, whose "
                        "series it would be: a family's TYPE comes before its samples, and its "
                        "series are not families of their own"
                    )
            family.typed = True
            family.type = meta.text
        else:
            if family.help is not None:
                raise LineError(f"a second # HELP line for {meta.name}")
            family.help = meta.text

    def _not_a_series(self, name: str) -> None:
        """A family may not be named as a series of a histogram or summary declared before
        it: the exposition groups families by name, and every reader would take its
        block for a second declaration of that histogram or summary (Prometheus' own
        client libraries refuse to write such a pair)."""
        for mtype, suffixes in _SERIES_SUFFIXES.items():
            for suffix in suffixes:
                if name.endswith(suffix):
                    base = self.families.get(name[: -len(suffix)])
                    if base is not None and base.type == mtype:
                        raise LineError(
                            f"{name} is the name of a series of {mtype} {base.name}: "
                            "it cannot be a family of its own"
                        )

    def _new_family(self, name: str) -> _Family:
        """A family for a name met for the first time, within the bound on names."""
        if len(self.families) >= self.scope.max_series:
            raise self._too_many_names()
        return _Family(name)

    def _route(self, name: str, lineno: int, line: str) -> tuple[_Family, str, int]:
        """Which family a sample name belongs to (once per name), and whether it is kept."""
        family = self.families.get(name)
        bound = _ANY
        if family is not None:
            if family.type == "histogram":
                raise _error(
                    lineno, line, f"{name} is a histogram: its samples are {name}_bucket, _sum and _count"
                )
            if family.type == "summary":
                bound = _QUANTILE
        else:
            family, bound = self._by_suffix(name)
            if family is None:
                family = self.families[name] = self._new_family(name)
        if len(self.rules.prefix) + len(name) > self.rules.max_label_length:
            family = self.overlong
        if family.keep is None:
            full = self.rules.prefix + family.name
            family.reserved = in_namespaces(full, self.rules.reserved)
            family.keep = not family.reserved and (self.keep is None or self.keep(full))
        route = self.routes[name] = (family, self.rules.prefix + name, bound)
        return route

    def _by_suffix(self, name: str) -> tuple[_Family | None, int]:
        for suffix, types, bound in _BY_SUFFIX:
            if name.endswith(suffix):
                family = self.families.get(name[: -len(suffix)])
                if family is not None and family.type in types:
                    return family, bound
        if name.endswith("_created"):
            family = self.families.get(name[:-8] + "_total")
            if family is not None and family.type == "counter":
                return family, _ANY
        return None, _ANY

    def _shape(self, skel: str, lineno: int, line: str) -> Shape:
        try:
            shape = plan(skel, self.extra, self.rules.max_label_length)
        except LineError as exc:
            raise _error(lineno, line, str(exc)) from None
        self.shapes[skel] = shape
        return shape

    def _bound(self, bound: int, labels: str, lineno: int, line: str) -> None:
        """A bucket's ``le`` or a quantile's ``quantile`` must be there, and a number."""
        found = _BOUND[bound].search(labels)
        if found is None:
            raise _error(lineno, line, f"no {_BOUND_NAME[bound]} label")
        value = found.group(1)
        ok = self.bounds.get(value)
        if ok is None:
            ok = self.bounds[value] = number(value)
        if not ok:
            raise _error(
                lineno,
                line,
                f"{_BOUND_NAME[bound]}={value[:40]!r} is not a number (within a float64's range)",
            )

    def _series_limit(self) -> tuple[str, str]:
        """The config key of the series limit, and whose it is, as a limit's detail says them."""
        key = self.rules.series_key
        return key, f"of account {self.scope.account!r}" if key == MAX_SERIES_KEY else "of the relay"

    def _too_many_names(self) -> LimitExceeded:
        key, whose = self._series_limit()
        return LimitExceeded(
            "too_many_families",
            key,
            f"the body names more than {self.scope.max_series} metric families (declared, or met "
            f"in samples, whether the metric filter keeps them or not): {key} {whose} bounds its "
            "families as it bounds its series, and a real body names a few hundred",
        )

    def _too_many(self, limit: int) -> LimitExceeded:
        key, whose = self._series_limit()
        return LimitExceeded(
            "too_many_series",
            key,
            f"the body has more than {limit} series the metric filter keeps, more than "
            f"{key} {whose} allows: raise it, or deny families with the metric filter",
        )

    def _result(self, known: Mapping[FamilyKey, Family], duplicates: int, timestamps: int) -> Relayed:
        meta: dict[str, Family] = {}
        lines: dict[str, bytes] = {}
        plain: dict[str, bytes] = {}
        filtered = reserved_series = 0
        reserved: list[str] = []
        prefix = self.rules.prefix
        for family in self.families.values():
            if not family.keep:
                if family.reserved:
                    reserved.append(prefix + family.name)
                    reserved_series += family.skipped
                else:
                    filtered += family.skipped
                continue
            if not family.lines:
                continue
            name = prefix + family.name
            help_text = NO_HELP if family.help is None else family.help
            mtype: MetricType = family.type  # type: ignore[assignment]  # read_meta checked it
            meta[name] = known.get((name, mtype, help_text)) or RelayedFamily(name, mtype, help_text)
            lines[name] = b"".join(family.lines)
            family.lines = []
            if family.plain is not None:
                plain[name] = b"".join(family.plain)
                family.plain = None
        reserved.sort()
        return Relayed(
            Rendered(meta, lines, filtered, plain),
            self.too_long + self.overlong.skipped,
            duplicates,
            timestamps,
            tuple(reserved[:_NAMED_RESERVED]),
            reserved_series,
        )
