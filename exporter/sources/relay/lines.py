"""The text format 0.0.4, one line at a time: what a valid line is, and why a line is not.

A sample line is read in one of three ways. A line as client libraries write it
(``name{a="x",b="y"} value`` with an optional timestamp, single spaces, no trailing
comma) is matched by one regular expression, in C, that takes the label text as
written, the value and the timestamp: the :func:`form` of its label shape once that
shape has been met (faster, and it gives a bucket's ``le`` too), else ``CANONICAL``,
which takes the name as well. Any other line goes to :func:`read_sample`,
which accepts what Prometheus' own parser accepts (blanks around labels and their
``=`` and ``,``, a trailing comma, tabs) and gives back the same four parts with the
label text rewritten canonically, or says what is wrong in words a person can act on.

Label values are kept as written, escapes included: Prometheus undoes ``\\\\``,
``\\"`` and ``\\n`` and keeps any other backslash as it is, and so does whoever
scrapes the relayed text, so passing the escaped text through changes nothing of
what is stored. Values are kept as written too (a relayed ``1e3`` stays ``1e3``).

Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import NamedTuple

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
# A quoted label value, escapes and all, as one unrolled loop (no alternation per character).
_INNER = r'[^"\\\n]*(?:\\.[^"\\\n]*)*'
LABEL_VALUE = f'"{_INNER}"'
# What Go's strconv.ParseFloat takes (without hexadecimal forms, which no client writes),
# written so that no text matches it in two ways: a long run of digits that turns out not
# to be a number is given up in one pass, not tried split at every digit.
_INF = r"[Ii][Nn][Ff](?:[Ii][Nn][Ii][Tt][Yy])?"
FLOAT = rf"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|{_INF})|[Nn][Aa][Nn]"
# The part of FLOAT that no parser reads past a float64's range (below 1e300: at most 200
# digits before the point, an exponent of at most two digits): what lines are matched with.
# Any other number goes to ``read_sample``, which checks its range (``in_range``).
SAFE_FLOAT = (
    rf"[+-]?(?:(?:[0-9]{{1,200}}(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{{1,2}})?|{_INF})|[Nn][Aa][Nn]"
)
TIMESTAMP = r"[+-]?[0-9]+"
_PAIR = f"{LABEL_NAME}={LABEL_VALUE}"

CANONICAL = re.compile(
    rf"({METRIC_NAME})(?:\{{((?:{_PAIR},)*{_PAIR})?\}})? ({SAFE_FLOAT})(?: ({TIMESTAMP}))?"
)
PAIRS = re.compile(rf"({LABEL_NAME})=({LABEL_VALUE})")
VALID_FLOAT = re.compile(FLOAT)
VALID_METRIC_NAME = re.compile(METRIC_NAME)

_NAME_AT = re.compile(METRIC_NAME)
_LABEL_NAME_AT = re.compile(LABEL_NAME)
_VALUE_AT = re.compile(LABEL_VALUE)
_BLANKS = re.compile(r"[ \t]*")
_TOKEN = re.compile(r"[^ \t]+")
METRIC_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
OPENMETRICS_TYPES = frozenset({"unknown", "info", "stateset", "gaugehistogram"})
# How much of an offending line an error quotes.
QUOTE_CHARS = 80


# A sample line of one known label shape, matched from its "{": the label text, the
# values of ``le`` and ``quantile`` ('' when the shape has none), the value, the timestamp.
Form = Callable[[str, int], "re.Match[str] | None"]


def form(names: tuple[str, ...]) -> Form | None:
    """A matcher for the lines whose labels are ``names``, in this order (see ``Form``):
    one regular expression with the names written out, faster than ``CANONICAL`` and
    giving a bucket's ``le`` without a search. None for a shape that has ``quantile``
    before ``le``, which no client writes."""
    if "le" in names and "quantile" in names and names.index("quantile") < names.index("le"):
        return None
    pairs = ",".join(f'{n}="({_INNER})"' if n in ("le", "quantile") else f"{n}={LABEL_VALUE}" for n in names)
    head = "" if "le" in names else "()"
    after = "" if "quantile" in names else "()"
    return re.compile(rf"\{{({head}{pairs}){after}\}} ({SAFE_FLOAT})(?: ({TIMESTAMP}))?").fullmatch


class LineError(ValueError):
    """What is wrong with one line, without the line number (the reader adds it)."""


class Sample(NamedTuple):
    """One sample line's parts: ``labels`` is the label text between the braces as written
    canonically (empty for none); ``timestamp`` is None without one."""

    name: str
    labels: str
    value: str
    timestamp: str | None


class Meta(NamedTuple):
    """A ``# HELP`` or ``# TYPE`` line: ``kind`` is ``HELP`` or ``TYPE``, ``text`` the
    help text (escapes undone) or the type."""

    kind: str
    name: str
    text: str


def quote(line: str) -> str:
    """The start of a line, to show in an error."""
    return repr(line[:QUOTE_CHARS] + ("…" if len(line) > QUOTE_CHARS else ""))


def in_range(value: str) -> bool:
    """Whether a number of FLOAT's form is within a float64's range, as Prometheus and every
    other reader of the text format require (Go's ParseFloat refuses ``1e309``, and one
    such value fails the whole scrape; an underflow to 0 is accepted)."""
    return not math.isinf(float(value)) or value.lstrip("+-")[:1] in ("i", "I")


def number(value: str) -> bool:
    """Whether a value, a bucket's ``le`` or a quantile is a number Prometheus reads."""
    return VALID_FLOAT.fullmatch(value) is not None and in_range(value)


def unescape_help(text: str) -> str:
    """A HELP text as Prometheus reads it: ``\\\\`` and ``\\n`` undone, other backslashes kept."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while True:
        j = text.find("\\", i)
        if j < 0 or j + 1 >= len(text):
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        nxt = text[j + 1]
        out.append("\\" if nxt == "\\" else "\n" if nxt == "n" else "\\" + nxt)
        i = j + 2


def unescaped_length(value: str) -> int:
    """The length of a quoted label value as written (quotes included) once its escapes
    are undone: every backslash stands for itself and the character after it."""
    return len(value) - 2 - value.count("\\") + value.count("\\\\")


def read_meta(line: str) -> Meta | None:
    """A comment line (first non-blank character ``#``) as HELP or TYPE, or None for any
    other comment."""
    rest = line.lstrip(" \t")[1:]
    blanks = _BLANKS.match(rest)
    assert blanks is not None
    rest = rest[blanks.end() :]
    kind = rest[:4]
    if kind not in ("HELP", "TYPE") or (len(rest) > 4 and rest[4] not in " \t"):
        if rest.rstrip(" \t\r") == "EOF":
            raise LineError(
                "'# EOF' ends an OpenMetrics body: the endpoint answered in OpenMetrics, and only "
                "the text format 0.0.4 is relayed (ask it for text/plain; version=0.0.4)"
            )
        return None
    rest = rest[4:].lstrip(" \t")
    name = _NAME_AT.match(rest)
    if name is None or (name.end() < len(rest) and rest[name.end()] not in " \t\r"):
        raise LineError(f"# {kind} must be followed by a valid metric name")
    text = rest[name.end() :].lstrip(" \t")
    if kind == "HELP":
        return Meta(kind, name.group(), unescape_help(text.removesuffix("\r")))
    mtype = text.rstrip(" \t\r")
    if mtype not in METRIC_TYPES:
        if mtype in OPENMETRICS_TYPES:
            raise LineError(
                f"type {mtype!r} of {name.group()} is OpenMetrics, not the text format 0.0.4 "
                "(counter, gauge, histogram, summary or untyped)"
            )
        raise LineError(
            f"# TYPE of {name.group()} must be counter, gauge, histogram, summary or untyped, "
            f"not {mtype[:40]!r}"
        )
    return Meta(kind, name.group(), mtype)


def read_sample(line: str) -> Sample:
    """A sample line written in any way Prometheus accepts; raise LineError saying what is
    wrong otherwise. The label text comes back canonical: ``a="x",b="y"``."""
    line = line.removesuffix("\r")
    end = len(line.rstrip(" \t"))
    pos = _skip(line, 0)
    name = _NAME_AT.match(line, pos)
    if name is None:
        raise LineError("a sample line must start with a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
    pos = name.end()
    labels = ""
    if pos < end and line[pos] not in " \t{":
        raise LineError(f"character {line[pos]!r} is not allowed in a metric name")
    pos = _skip(line, pos)
    if pos < end and line[pos] == "{":
        labels, pos = _read_labels(line, pos + 1)
        pos = _skip(line, pos)
    if pos >= end:
        raise LineError(f"sample {name.group()} has no value")
    value = _TOKEN.match(line, pos)
    assert value is not None
    if VALID_FLOAT.fullmatch(value.group()) is None:
        raise LineError(f"value {value.group()[:40]!r} of {name.group()} is not a number")
    if not in_range(value.group()):
        raise LineError(
            f"value {value.group()[:40]!r} of {name.group()} is past the range of a 64-bit float "
            "(Prometheus refuses it, and would fail the whole scrape)"
        )
    pos = _skip(line, value.end())
    timestamp = None
    if pos < end:
        if line[pos] == "#":
            raise LineError(
                "an exemplar ('# {…} value') follows the value: exemplars are OpenMetrics "
                "syntax, which the text format 0.0.4 has not (the endpoint answered in OpenMetrics?)"
            )
        token = _TOKEN.match(line, pos)
        assert token is not None
        timestamp = token.group()
        if re.fullmatch(TIMESTAMP, timestamp) is None:
            raise LineError(
                f"timestamp {timestamp[:40]!r} of {name.group()} is not an integer (milliseconds)"
            )
        pos = _skip(line, token.end())
        if pos < end:
            raise LineError(f"text after the timestamp of {name.group()}: {line[pos : pos + 20]!r}")
    return Sample(name.group(), labels, value.group(), timestamp)


def _skip(line: str, pos: int) -> int:
    blanks = _BLANKS.match(line, pos)
    assert blanks is not None
    return blanks.end()


def _read_labels(line: str, pos: int) -> tuple[str, int]:
    """The pairs after a ``{`` up to its ``}``, as canonical text, and where they end."""
    pairs: list[str] = []
    while True:
        pos = _skip(line, pos)
        if line.startswith("}", pos):
            return ",".join(pairs), pos + 1
        name = _LABEL_NAME_AT.match(line, pos)
        if name is None:
            if pos >= len(line):
                raise LineError("the label set is not closed with '}'")
            raise LineError(f"label name expected at {line[pos : pos + 20]!r} ([a-zA-Z_][a-zA-Z0-9_]*)")
        pos = _skip(line, name.end())
        if not line.startswith("=", pos):
            raise LineError(f"'=' expected after label name {name.group()}")
        pos = _skip(line, pos + 1)
        value = _VALUE_AT.match(line, pos)
        if value is None:
            if line.startswith('"', pos):
                raise LineError(f"the value of label {name.group()} is not closed with '\"'")
            raise LineError(f"the value of label {name.group()} must be a double-quoted string")
        pairs.append(f"{name.group()}={value.group()}")
        pos = _skip(line, value.end())
        if line.startswith(",", pos):
            pos += 1
        elif not line.startswith("}", pos):
            raise LineError(f"',' or '}}' expected after the value of label {name.group()}")
