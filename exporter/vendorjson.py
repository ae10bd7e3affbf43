"""Reading a vendor's JSON answer: what ``json.loads`` lets through that the exporter must not.

Every answer body goes through :func:`read_json` (``exporter.upstream``), which refuses,
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
escape spelled: ``\\u0073k-…``, or ``\\/`` for a key's ``/``. A body without such an
escape (no ``\\u``, and no short escape standing for a character some key contains)
decodes to exactly the bytes that were scrubbed, and is not walked; one with an escape
has every string scrubbed (object keys too), which is also when a lone surrogate can
appear, so one walk does both.

Pure: no I/O, and importing it loads no network stack.
"""

from __future__ import annotations

import json
from typing import Any

from exporter.errors import InvalidResponse
from exporter.logs import SCRUBBER

# JSON's two-character escapes, and the character each stands for.
_SHORT_ESCAPES = (
    ('\\"', '"'),
    ("\\\\", "\\"),
    ("\\/", "/"),
    ("\\b", "\b"),
    ("\\f", "\f"),
    ("\\n", "\n"),
    ("\\r", "\r"),
    ("\\t", "\t"),
)


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
    if not _escaped(text):
        return doc
    try:
        return _clean(doc)
    except _NotText:
        raise InvalidResponse(
            f"{what}: the string at {_first_not_text(doc)} is not valid Unicode (a lone surrogate escape)"
        ) from None


def _escaped(text: str) -> bool:
    """True if an escape in ``text`` may spell a lone surrogate or part of a key."""
    return "\\u" in text or any(seq in text for seq, char in _SHORT_ESCAPES if SCRUBBER.uses(char))


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
