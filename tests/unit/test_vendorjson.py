"""Reading vendor JSON: what json.loads lets through is refused or scrubbed."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.core.errors import InvalidResponse
from exporter.core.logs import SCRUBBER
from exporter.upstream import vendorjson
from exporter.upstream.vendorjson import read_json
from tests.helpers import scrubbing

KEY = "sk-test/9f1c+2a_77e4"
SHORT = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


@pytest.fixture(autouse=True)
def key_scrubbed() -> Iterator[None]:
    with scrubbing(KEY):
        yield


def escaped(s: str, rng: random.Random) -> str:
    """``s`` as a JSON string, each character written plainly or escaped, at random."""
    out = []
    for c in s:
        plain = SHORT.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 else c)
        choices = [plain, f"\\u{ord(c):04X}" if c.isalpha() else f"\\u{ord(c):04x}"]
        if c in SHORT:
            choices.append(SHORT[c])
        out.append(rng.choice(choices) if ord(c) < 0x10000 else plain)
    return '"' + "".join(out) + '"'


def dumps(doc: Any, rng: random.Random) -> str:
    """JSON text of ``doc`` whose strings (object keys too) are escaped at random."""
    if isinstance(doc, str):
        return escaped(doc, rng)
    if isinstance(doc, list):
        return "[" + ",".join(dumps(v, rng) for v in doc) + "]"
    if isinstance(doc, dict):
        return "{" + ",".join(f"{escaped(k, rng)}:{dumps(v, rng)}" for k, v in doc.items()) + "}"
    return json.dumps(doc)


def scrubbed(doc: Any) -> Any:
    """``doc`` as it must read: every string scrubbed."""
    if isinstance(doc, str):
        return SCRUBBER.scrub(doc)
    if isinstance(doc, list):
        return [scrubbed(v) for v in doc]
    if isinstance(doc, dict):
        return {SCRUBBER.scrub(k): scrubbed(v) for k, v in doc.items()}
    return doc


def read(text: str) -> Any:
    """What the request path does with a body: scrub its bytes, then read it."""
    return read_json(SCRUBBER.scrub_bytes(text.encode()), "GET /x")


# Strings made of pieces of text, some of them the key, some close to it.
texts = st.lists(
    st.sampled_from(["", "org/", KEY, KEY[:-1], "é", "\n", "a b", '"', "\\", "/"]), max_size=5
).map("".join)
docs = st.recursive(
    st.none() | st.integers() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(doc=docs, seed=st.integers(0, 2**32))
def test_no_escape_carries_a_key_past_the_scrubber(doc: Any, seed: int) -> None:
    text = dumps(doc, random.Random(seed))
    assert read(text) == scrubbed(doc)


@pytest.mark.parametrize(
    "text",
    [
        '{"output_name": "org/\\u0073k-test/9f1c+2a_77e4"}',
        '{"output_name": "org/sk-test\\/9f1c+2a_77e4"}',
        '{"output_name": "org/\\u0073k-test\\/9f1c\\u002b2a_77e4"}',
    ],
)
def test_a_key_spelled_with_escapes_is_scrubbed(text: str) -> None:
    assert read(text) == {"output_name": "org/<redacted>"}


def test_only_a_body_whose_escapes_may_hide_something_is_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[Any] = []

    def clean(doc: Any) -> Any:
        walked.append(doc)
        return doc

    monkeypatch.setattr(vendorjson, "_clean", clean)
    # Escapes that spell no key and no surrogate: the strings are as scrubbed.
    for text in ('{"m": "line\\none \\"quoted\\" a\\/b caf\\u00e9 \\u0026"}', '["sk-test\\\\/9f1c+2a_77e4"]'):
        read(text)
    assert not walked
    # A key spelled with escapes, across several; a surrogate pair (walked to be sure).
    read('["x\\u0073k\\u002dtest\\/9f1c+2a_77e4"]')
    read('["\\ud83d\\ude00"]')
    assert walked == [["xsk-test/9f1c+2a_77e4"], ["\U0001f600"]]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"a": ', "body is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deep"),
        (b'{"a": "\xed\xa0\x80"}', "body is not UTF-8"),  # a surrogate encoded in UTF-8 bytes
        ('{"a": "b"}'.encode("utf-32"), "body is not UTF-8"),
        (b'"\\udfff"', "the string at the document is not valid Unicode (a lone surrogate escape)"),
        (b'{"deployments": [{"id": "d\\udfff"}]}', "the string at deployments[0].id is not valid Unicode"),
        (b'[{"x": 1}, {"\\ud800": 1}]', 'the string at [1]["\\ud800"] (a key) is not valid Unicode'),
        (b'{"a b": ["ok", "\\udc00"]}', 'the string at ["a b"][1] is not valid Unicode'),
    ],
)
def test_what_cannot_be_carried_is_an_invalid_response(body: bytes, detail: str) -> None:
    with pytest.raises(InvalidResponse) as err:
        read_json(body, "GET /x")
    assert err.value.detail.startswith(f"GET /x: {detail}")


def test_a_path_never_shows_a_key_or_a_long_name() -> None:
    # The key in the name is escaped: the raw bytes do not show it.
    body = ('{"org/\\u0073' + KEY[1:] + '": {"' + "n" * 100 + '": "\\udfff"}}').encode()
    assert KEY.encode() not in body
    with pytest.raises(InvalidResponse) as err:
        read_json(body, "GET /x")
    assert err.value.detail == (
        f'GET /x: the string at ["org/<redacted>"].{"n" * 40} is not valid Unicode (a lone surrogate escape)'
    )


def test_a_byte_order_mark_is_ignored() -> None:
    assert read_json(b'\xef\xbb\xbf{"a": 1}', "GET /x") == {"a": 1}
