"""The shared readers of vendor JSON: what counts as no data, and what fails a poll."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from exporter.core.errors import InvalidResponse
from exporter.sources import jsonshape as js


@pytest.mark.parametrize(
    ("value", "number", "count", "whole"),
    [
        (7, 7.0, 7.0, 7),
        (7.0, 7.0, 7.0, 7),
        (7.5, 7.5, 7.5, None),
        (0, 0.0, 0.0, 0),
        (-1, -1.0, None, None),
        (float("nan"), "nan", None, None),
        (float("inf"), float("inf"), None, None),
        (10**400, None, None, None),  # larger than any float
        (True, None, None, None),  # JSON true is not the number 1
        ("3", None, None, None),
        (None, None, None, None),
        ([1], None, None, None),
    ],
)
def test_optional_numbers(value: Any, number: Any, count: float | None, whole: int | None) -> None:
    got = js.number(value)
    if number == "nan":
        assert got is not None and got != got
    else:
        assert got == number
    assert js.count(value) == count
    assert js.whole(value) == whole
    assert js.whole(value) is None or type(js.whole(value)) is int


def test_text_is_cut_and_anything_else_is_empty() -> None:
    assert js.text("abcdef", 3) == "abc"
    assert js.text("ab", 3) == "ab"
    assert [js.text(v, 3) for v in (None, 1, ["a"], {"a": "b"})] == ["", "", "", ""]


def test_required_fields_say_where_and_which() -> None:
    doc: dict[str, Any] = {"n": 3, "flag": True, "s": "x", "empty": "", "neg": -2, "f": 1.5}
    assert js.required_int(doc, "n", "W") == 3
    assert js.required_str(doc, "s", "W") == "x"
    assert js.required_str(doc, "empty", "W") == ""
    assert js.required_count(doc, "f", "W") == 1.5
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: js.required_int(doc, "gone", "W"), "W: field gone is missing"),
        (lambda: js.required_int(doc, "flag", "W"), "W: field flag is not an integer"),
        (lambda: js.required_int(doc, "f", "W"), "W: field f is not an integer"),
        (lambda: js.required_str(doc, "n", "W"), "W: field n is not a string"),
        (lambda: js.required_str(doc, "empty", "W", empty=False), "W: field empty is empty"),
        (lambda: js.required_count(doc, "s", "W"), "W: field s is not a number"),
        (lambda: js.required_count(doc, "neg", "W"), "W: field neg is not a finite non-negative count"),
        (lambda: js.json_object([], "W"), "W: expected a JSON object, got list"),
        (
            lambda: js.objects({"items": [{}, 1]}, "items", "W"),
            "W: expected an object with a list of objects",
        ),
        (lambda: js.objects({"items": None}, "items", "W"), "under 'items'"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidResponse) as err:
            call()
        assert err.value.reason == "invalid_response"
        assert message in err.value.detail


def test_required_shapes_pass_through() -> None:
    doc = {"items": [{"a": 1}]}
    assert js.json_object(doc, "W") is doc
    assert js.objects(doc, "items", "W") == [{"a": 1}]
