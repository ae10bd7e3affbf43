"""Parsed URLs kept for repeated requests: what is kept, for how long, and that it changes nothing sent."""

from __future__ import annotations

import asyncio

import httpx

from exporter.upstream.urlcache import UrlCache
from tests.unit.test_upstream import echo, vendor


def test_a_url_is_parsed_once_and_equals_a_fresh_parse() -> None:
    cache = UrlCache()
    text = "http://127.0.0.1:9/v1/queue/metrics?model=org%2Fa+b"
    first = cache.get(text)
    assert cache.get(text) is first
    assert first == httpx.URL(text) and str(first) == text
    assert len(cache) == 1


def test_a_url_unused_for_a_whole_generation_is_dropped() -> None:
    cache = UrlCache(generation_size=3)
    kept = cache.get("http://h/kept")
    gone = cache.get("http://h/gone")
    # "kept" is asked for in every generation; "gone" never again.
    for i in range(20):
        cache.get(f"http://h/other-{i}")
        if i % 2 == 0:
            assert cache.get("http://h/kept") is kept
    assert len(cache) <= 6  # two generations of three at most
    assert cache.get("http://h/gone") is not gone  # parsed anew
    assert cache.get("http://h/kept") is kept


def test_generations_also_end_with_time_so_a_removed_targets_url_goes() -> None:
    """A steady fleet far below the size still drops the URLs of targets that went."""
    now = [0.0]
    cache = UrlCache(generation_size=1000, generation_seconds=60, clock=lambda: now[0])
    polled = [f"http://h/target-{i}" for i in range(10)]
    removed = cache.get("http://h/removed")
    parsed = {text: cache.get(text) for text in polled}
    for _ in range(8):  # polls every 20 s; a new target shows up at each
        now[0] += 20
        cache.get(f"http://h/new-{now[0]}")
        assert all(cache.get(text) is parsed[text] for text in polled)
    assert len(cache) < 20
    assert cache.get("http://h/removed") is not removed


def test_repeated_requests_send_the_same_as_others_and_only_they_are_kept() -> None:
    async def go() -> None:
        async for c in vendor({"/echo": echo}):
            for repeated in (True, True, False):
                r = await c.request_json(
                    "GET",
                    "/echo",
                    params={"model": "a/b c", "n": 1},
                    source="s",
                    endpoint="/echo",
                    timeout=2,
                    repeated=repeated,
                )
                assert r.doc["path"] == "/v1/echo" and r.doc["query"] == {"model": "a/b c", "n": "1"}
                assert r.doc["auth"] == "Bearer secret-key"
            await c.request_json("GET", "/echo", params={"at": 5}, source="s", endpoint="/echo", timeout=2)
            assert len(c._urls) == 1

    asyncio.run(go())
