"""Reading vendor JSON: the checks every translate module makes, written once.

Two kinds of reader, after what the vendor's schema says of a field:

- optional fields (``number``, ``count``, ``whole``, ``text``): a value of any other
  shape is "no data" (None, or "" for text), never an error, so one odd field does
  not cost the rest of the document;
- required fields (``json_object``, ``objects``, ``required_int``, ``required_str``,
  ``required_count``): a wrong shape is schema drift and raises ``InvalidResponse``
  naming where and which field, so the poll fails with a reason instead of exporting
  a made-up value.

Booleans are never numbers here: JSON ``true`` is not the count 1.

Pure: no I/O, and importing it loads no network stack.
"""

from __future__ import annotations

import math
from typing import Any

from exporter.core.errors import InvalidResponse


def number(value: Any) -> float | None:
    """A JSON number as float; None for null, booleans, strings and other shapes."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float
        return None


def count(value: Any) -> float | None:
    """A finite, non-negative number (a count, a duration), else None."""
    f = number(value)
    return f if f is not None and math.isfinite(f) and f >= 0 else None


def whole(value: Any) -> int | None:
    """A non-negative whole number, written 7 or 7.0 (a step, a retry count), else None."""
    f = count(value)
    return int(f) if f is not None and f.is_integer() else None


def text(value: Any, limit: int) -> str:
    """A string cut to ``limit`` characters (it becomes a label value); "" for anything else."""
    return value[:limit] if isinstance(value, str) else ""


def json_object(doc: Any, where: str) -> dict[str, Any]:
    """The document itself, which must be a JSON object."""
    if not isinstance(doc, dict):
        raise InvalidResponse(f"{where}: expected a JSON object, got {type(doc).__name__}")
    return doc


def objects(doc: Any, key: str, where: str) -> list[dict[str, Any]]:
    """The list of objects under ``key`` of an object (a vendor's list endpoint)."""
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidResponse(f"{where}: expected an object with a list of objects under {key!r}")
    return items


def _wrong(where: str, key: str, value: Any, expected: str) -> InvalidResponse:
    return InvalidResponse(f"{where}: field {key} is {'missing' if value is None else 'not ' + expected}")


def required_int(doc: dict[str, Any], key: str, where: str) -> int:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _wrong(where, key, v, "an integer")
    return v


def required_str(doc: dict[str, Any], key: str, where: str, *, empty: bool = True) -> str:
    """A string field; with ``empty=False`` an empty string is as good as missing."""
    v = doc.get(key)
    if not isinstance(v, str):
        raise _wrong(where, key, v, "a string")
    if not v and not empty:
        raise InvalidResponse(f"{where}: field {key} is empty")
    return v


def required_count(doc: dict[str, Any], key: str, where: str) -> float:
    """A finite, non-negative number the schema requires (a queue's depth)."""
    v = doc.get(key)
    f = number(v)
    if f is None:
        raise _wrong(where, key, v, "a number")
    if not math.isfinite(f) or f < 0:
        raise InvalidResponse(f"{where}: field {key} is not a finite non-negative count")
    return f
