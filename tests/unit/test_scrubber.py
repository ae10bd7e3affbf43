"""The secret scrubber: log text, and vendor answers before they are parsed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from exporter.core.errors import UpstreamError
from exporter.core.logs import SecretScrubber
from exporter.upstream.client import UpstreamStats, VendorClient
from tests.helpers import scrubbing

KEY = "tok-" + "9e2b" * 20


@pytest.fixture(name="scrubbing")
def scrubbing_fixture() -> Iterator[None]:
    with scrubbing(KEY):
        yield


def test_a_key_containing_another_is_replaced_whole() -> None:
    s = SecretScrubber()
    s.set_secrets({"abcd", "abcdefgh", "ab"})  # too short to be a key: never replaced
    assert s.scrub("x abcdefgh y abcd z ab") == "x <redacted> y <redacted> z ab"
    assert s.scrub_bytes(b"x abcdefgh y abcd") == b"x <redacted> y <redacted>"
    assert s.scrub_bytes(bytearray(b"-abcd-")) == bytearray(b"-<redacted>-")
    clean = b"nothing to see"
    assert s.scrub_bytes(clean) is clean


def client(handler: httpx.MockTransport) -> VendorClient:
    return VendorClient(
        "together", "http://vendor.test", KEY, max_connections=1, stats=UpstreamStats(), transport=handler
    )


def test_an_answer_is_scrubbed_before_it_is_parsed(scrubbing: None) -> None:
    doc = {"model_output_name": f"org/out-{KEY}", "status": KEY, "nested": [{KEY: KEY}]}

    async def go() -> object:
        c = client(httpx.MockTransport(lambda _: httpx.Response(200, json=doc)))
        try:
            return (await c.request_json("GET", "/x", source="s", endpoint="/x", timeout=2)).doc
        finally:
            await c.aclose()

    assert asyncio.run(go()) == {
        "model_output_name": "org/out-<redacted>",
        "status": "<redacted>",
        "nested": [{"<redacted>": "<redacted>"}],
    }


def test_an_error_message_cut_short_keeps_no_part_of_the_key(scrubbing: None) -> None:
    # The vendor's message is cut to 200 characters; the key straddles the cut.
    message = "x" * 180 + KEY

    async def go() -> UpstreamError:
        c = client(httpx.MockTransport(lambda _: httpx.Response(401, json={"error": {"message": message}})))
        try:
            with pytest.raises(UpstreamError) as err:
                await c.request_json("GET", "/x", source="s", endpoint="/x", timeout=2)
            return err.value
        finally:
            await c.aclose()

    exc = asyncio.run(go())
    assert exc.reason == "unauthorized"
    assert exc.detail.endswith("x<redacted>") and KEY[:8] not in exc.detail
