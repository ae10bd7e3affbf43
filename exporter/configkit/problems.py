"""How a config problem is written: where it is (a dotted path, as the file reads) and
what was found there (a value, as the YAML file shows it)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any, TypeVar

# A place in the document: keys and list indexes from the top.
Path = tuple[str | int, ...]
# A problem found by a check that reads the validated model: where, and what is wrong.
Finding = tuple[Path, str]
W = TypeVar("W")
K = TypeVar("K", bound=Hashable)


def format_path(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text or "(top level)"


def repeats(items: Iterable[tuple[W, K]]) -> Iterator[tuple[W, K, W]]:
    """Each item whose key an earlier item already has, as (where, key, where the first is).

    The one duplicate check of every config file: keys written twice in a YAML
    mapping, and list entries that name the same thing twice (a queue, a job, a
    deployment).
    """
    first: dict[K, W] = {}
    for where, key in items:
        if key in first:
            yield where, key, first[key]
        else:
            first[key] = where


def duplicates(items: Iterable[tuple[Path, Hashable]], what: str, note: str = "") -> list[Finding]:
    """A problem for each item whose key an earlier item used, pointing at the first."""
    return [
        (p, f"duplicate {what} {key!r} (first at {format_path(first)}){note}")
        for p, key, first in repeats(items)
    ]


def describe_value(value: Any) -> str:
    """A value as the YAML file shows it: ``'abc'``, ``12``, ``true``, a list, a map."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return repr(value)
