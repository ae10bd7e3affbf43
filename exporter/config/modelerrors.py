"""Validation errors in the words of the person editing the YAML file.

Pydantic's messages speak of Python ("Input should be a valid dictionary or instance
of GlobalConfig"); a config error should say what was expected in YAML's terms (a
whole number, true or false, a list, a map of keys) and what was found, and an unknown
key should name the known key it most likely misspells.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from exporter.configkit.problems import describe_value, format_path

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list (items on lines starting with '- ', or [a, b])",
    "dict_type": "a map of keys to values",
    "model_type": "a map of keys to values",
    "model_attributes_type": "a map of keys to values",
}
_BOUNDS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}


def document_path(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """The part of a pydantic error location that exists in the document: pydantic adds
    the union member or validator name to some locations."""
    return tuple(p for p in loc if isinstance(p, int) or not str(p).startswith(("function-", "[")))


def plain_message(err: Any, root: type[BaseModel]) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) in plain words.

    ``root`` is the model the document was validated against: an unknown key is
    compared with the keys its model accepts at that place.
    """
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        loc = document_path(err["loc"])
        if (advice := belongs_under(root, loc)) is not None:
            return f"unknown key here; {advice}"
        guess = closest_key(str(loc[-1]), known_keys(root, loc[:-1]))
        return f"unknown key; did you mean {guess!r}?" if guess else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in _EXPECTED:
        got = describe_value(value)
        hint = ""
        if kind == "string_type" and isinstance(value, bool | int | float):
            hint = f" (YAML reads it as a {'boolean' if isinstance(value, bool) else 'number'}; quote it)"
        return f"expected {_EXPECTED[kind]}, got {got}{hint}"
    if kind == "literal_error" and "expected" in ctx:
        return f"expected one of {ctx['expected']}, got {describe_value(value)}"
    if kind in _BOUNDS and _BOUNDS[kind][0] in ctx:
        name, words = _BOUNDS[kind]
        bound = ctx[name]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # the limit as the field was declared (gt=0), not as coerced (0.0)
        return f"{words} {bound}, got {describe_value(value)}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    return str(err["msg"]).removeprefix("Value error, ")


def closest_key(key: str, known: Sequence[str]) -> str | None:
    """The known key ``key`` most likely misspells (letter case aside), if any is close."""
    by_lower = {k.lower(): k for k in known}
    match = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def belongs_under(root: type[BaseModel], loc: Sequence[str | int]) -> str | None:
    """Where a key unknown at ``loc`` is known, one level deeper or any level up (a key
    indented too little or too much, which a person fixes by moving the line), as advice."""
    *parent, key = loc
    for name in known_keys(root, parent):
        if key in known_keys(root, (*parent, name)):
            return f"{key!r} belongs under {format_path((*parent, name))}: indent it there"
    for depth in range(len(parent) - 1, -1, -1):
        if key in known_keys(root, parent[:depth]):
            place = f"under {format_path(tuple(parent[:depth]))}" if depth else "at the top level"
            return f"{key!r} belongs {place}: indent it less"
    return None


def known_keys(root: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys the model at ``path`` (a location in the document) accepts, as written in YAML."""
    types_here: list[Any] = [root]
    for part in path:
        types_here = [t for ann in types_here for t in _step(ann, part)]
    keys: list[str] = []
    for ann in types_here:
        for model in _models(ann):
            keys += [field.alias or name for name, field in model.model_fields.items()]
    return keys


def _members(ann: Any) -> list[Any]:
    """``ann`` with Annotated, Optional and unions unwrapped."""
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _members(typing.get_args(ann)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in typing.get_args(ann) for m in _members(arg)]
    return [ann]


def _models(ann: Any) -> list[type[BaseModel]]:
    return [m for m in _members(ann) if isinstance(m, type) and issubclass(m, BaseModel)]


def _step(ann: Any, part: str | int) -> list[Any]:
    """The types one step below ``ann``: a model's field, a list's item, a map's value."""
    out: list[Any] = []
    for member in _members(ann):
        origin, args = typing.get_origin(member), typing.get_args(member)
        if isinstance(part, str) and isinstance(member, type) and issubclass(member, BaseModel):
            out += [f.annotation for n, f in member.model_fields.items() if part in (n, f.alias)]
        elif isinstance(part, int) and origin in (list, tuple) and args:
            out.append(args[0])
        elif isinstance(part, str) and origin is dict and len(args) == 2:
            out.append(args[1])
    return out
