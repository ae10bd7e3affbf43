"""Reading a vendor's JSON answer: what ``json.loads`` lets through that the exporter must not.

Every answer body goes through :func:`read_json` (``exporter.upstream.client``), which refuses,
as ``invalid_response`` naming what and where:

- a body that is not UTF-8 (RFC 8259 §8.1; a leading byte order mark is ignored).
  ``json.loads`` would also take UTF-16 and UTF-32, in which an echoed key is not the
  byte string the scrubber looks for;
- nesting deeper than the parser's recursion limit (about a thousand levels; vendor
  documents have a handful), which raises ``RecursionError`` rather than ``ValueError``;
- a string that is not text: ``"\\udfff"`` (a lone surrogate) is valid JSON, but
  cannot be written into the exposition, a page or the log.

And it scrubs what the raw bytes could not show. The body's bytes have had every
configured key cut out before parsing, so a parsed string can only hold a key that an
escape spelled: ``\\u0073k-…``, or ``\\/`` for a key's ``/``. Walking every parsed
string costs several times the parse, so the walk (which scrubs every string, object
keys too, and finds lone surrogates) is only made when it can find something:

- a body without a backslash has no escape: its strings are the bytes that were scrubbed;
- a lone surrogate can only come from an escape ``\\uD800`` to ``\\uDFFF``;
- each parsed string is a substring of the whole text with its escapes undone (one
  after the other from the left, as the parser does, a surrogate pair as one
  character): when no key is in that, no string holds one.

Pure: no I/O, and importing it loads no network stack.
"""

from __future__ import annotations

import json
import re
from typing import Any

from exporter.core.errors import InvalidResponse
from exporter.core.logs import SCRUBBER

# An escape of a UTF-16 surrogate, paired or not (and, harmlessly, text that looks like one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Any JSON escape: a surrogate pair, another \u escape, or a two-character one.
_ESCAPE = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))", re.DOTALL
)
# What each two-character escape stands for.
_SHORT = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


# Longest part of an object's key shown in a detail's path.
_NAME_LIMIT = 40


class _NotText(Exception):
    """A parsed string holds a lone surrogate."""


def read_json(body: bytes | bytearray, what: str) -> Any:
    """The JSON document ``body`` holds, every string in it text with no key in it.

    ``what`` names the request in the detail of the ``InvalidResponse`` raised for a
    body that is not UTF-8, not JSON, nested too deep, or holds a string that is not text.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidResponse(f"{what}: body is not UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        doc = json.loads(text)
    except RecursionError:
        raise InvalidResponse(f"{what}: JSON nested too deep") from None
    except ValueError:
        raise InvalidResponse(f"{what}: body is not valid JSON") from None
    if not _may_hide(text):
        return doc
    try:
        return _clean(doc)
    except _NotText:
        raise InvalidResponse(
            f"{what}: the string at {_first_not_text(doc)} is not valid Unicode (a lone surrogate escape)"
        ) from None


def _may_hide(text: str) -> bool:
    """True if the escapes of ``text`` (valid JSON) may spell a key or a lone surrogate."""
    if "\\" not in text:
        return False
    return bool(_SURROGATE_ESCAPE.search(text)) or SCRUBBER.finds(_ESCAPE.sub(_undone, text))


def _undone(escape: re.Match[str]) -> str:
    """The character a JSON escape stands for."""
    high, low, code, short = escape.groups()
    if high:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)
    return chr(int(code, 16)) if code else _SHORT[short]


def _text(s: str) -> str:
    """``s`` scrubbed; _NotText if it cannot be encoded."""
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise _NotText from None
    return SCRUBBER.scrub(s)


def _clean(doc: Any) -> Any:
    """``doc`` with every string in it scrubbed, in place (no recursion: any depth the
    parser took is walked)."""
    if isinstance(doc, str):
        return _text(doc)
    stack = [doc] if isinstance(doc, list | dict) else []
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str):
                    node[i] = _text(v)
                elif isinstance(v, list | dict):
                    stack.append(v)
            continue
        renamed = False
        for k, v in node.items():
            if isinstance(v, str):
                node[k] = _text(v)
            elif isinstance(v, list | dict):
                stack.append(v)
            renamed = renamed or _text(k) != k
        if renamed:
            items = [(_text(k), v) for k, v in node.items()]
            node.clear()
            node.update(items)
    return doc


def _first_not_text(doc: Any) -> str:
    """Where the first string that is not text is, as ``deployments[0].id`` ("the
    document" for the document itself); only called once one is known to be there."""
    # (value, its path, whether it is an object's key), first in document order on top.
    stack: list[tuple[Any, str, bool]] = [(doc, "", False)]
    while stack:
        node, path, key = stack.pop()
        if isinstance(node, str):
            if not _encodable(node):
                return (path.lstrip(".") or "the document") + (" (a key)" if key else "")
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", False) for i, v in reversed(list(enumerate(node))))
        elif isinstance(node, dict):
            for k, v in reversed(list(node.items())):
                name = path + _member(k)
                stack += [(v, name, False), (k, name, True)]
    return "an unknown place"


def _member(key: str) -> str:
    """How a path names an object's member: ``.id``, or ``["a b"]`` (scrubbed, cut short,
    anything but printable ASCII escaped)."""
    name = SCRUBBER.scrub(key)[:_NAME_LIMIT]
    return f".{name}" if name.isidentifier() and name.isascii() else f"[{json.dumps(name)}]"


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
