"""Pages rendered once per query and moment, in steps that leave the loop free; the
streamed pages are the pages; response bodies go out in slices, each after a drain."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator

import pytest

from exporter.engine.health import TargetHealth
from exporter.sources.base import Target
from exporter.web import status
from exporter.web.pagecache import PageCache
from exporter.web.pages.targets import TargetsQuery, select
from exporter.web.sliced import SLICE, SlicedPayload
from tests.helpers import targets_page


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_query_is_rendered_once_for_everyone_asking_within_the_ttl() -> None:
    clock = Clock()
    snapshots: list[int] = []

    def snapshot() -> int:
        snapshots.append(1)
        return len(snapshots)

    cache: PageCache[int] = PageCache(snapshot, ttl=1.0, clock=clock)

    def render(snap: int) -> Iterator[str]:
        yield f"page {snap}"

    async def go() -> None:
        pages = await asyncio.gather(*(cache.page("q", render) for _ in range(50)))
        assert set(pages) == {b"page 1"} and cache.renders == 1
        assert await cache.page("other", render) == b"page 1"  # the same snapshot
        clock.now += 0.5
        assert await cache.page("q", render) == b"page 1" and cache.renders == 2
        clock.now += 0.6
        assert await cache.page("q", render) == b"page 2" and cache.renders == 3

    asyncio.run(go())
    assert len(snapshots) == 2


def test_what_is_kept_is_dropped_when_the_targets_change() -> None:
    version = [1]
    cache: PageCache[int] = PageCache(lambda: version[0], lambda: version[0], clock=Clock())

    def render(snap: int) -> Iterator[str]:
        yield f"page {snap}"

    async def go() -> None:
        assert await cache.page("q", render) == b"page 1"
        version[0] = 2  # a reload, say: within the ttl, yet the page is made again
        assert await cache.page("q", render) == b"page 2"

    asyncio.run(go())


def test_a_failed_render_reaches_every_asker_and_is_not_kept() -> None:
    cache: PageCache[int] = PageCache(lambda: 0, clock=Clock())
    calls: list[int] = []

    def render(snap: int) -> Iterator[str]:
        calls.append(snap)
        yield "partial"
        if len(calls) == 1:
            raise ValueError("boom")

    async def go() -> None:
        results = await asyncio.gather(
            cache.page("q", render), cache.page("q", render), return_exceptions=True
        )
        assert all(isinstance(r, ValueError) for r in results)
        assert await cache.page("q", render) == b"partial"

    asyncio.run(go())
    assert len(calls) == 2


def test_kept_pages_are_bounded() -> None:
    cache: PageCache[int] = PageCache(lambda: 0, entries=3, clock=Clock())

    def render(n: int) -> Iterator[str]:
        yield str(n)

    async def go() -> None:
        for i in range(10):
            await cache.page(i, render)

    asyncio.run(go())
    assert len(cache._pages) == 3


def test_a_long_render_leaves_the_loop_free_between_steps() -> None:
    """A render of about 150 ms; a ticker that wants the loop every millisecond."""

    def render(_: int) -> Iterator[str]:
        for _ in range(300):
            end = time.perf_counter() + 0.0005
            while time.perf_counter() < end:
                pass
            yield "x"

    async def go() -> float:
        cache: PageCache[int] = PageCache(lambda: 0)
        gaps: list[float] = []
        done = False

        async def tick() -> None:
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.ensure_future(tick())
        page = await cache.page("q", render)
        done = True
        await ticker
        assert page == b"x" * 300
        return max(gaps)

    # A step is 2 ms; a loaded machine may stretch one, not make it the whole render.
    assert asyncio.run(go()) < 0.05


def test_pages_are_rendered_one_at_a_time() -> None:
    """Different queries at once: one page's steps, then the next one's, so that a turn
    of the loop never holds more than one step of rendering."""
    order: list[str] = []

    def render_as(name: str) -> Callable[[int], Iterator[str]]:
        def render(_: int) -> Iterator[str]:
            for _ in range(20):
                end = time.perf_counter() + 0.001
                while time.perf_counter() < end:
                    pass
                order.append(name)
                yield name

        return render

    async def go() -> None:
        cache: PageCache[int] = PageCache(lambda: 0)
        await asyncio.gather(*(cache.page(n, render_as(n)) for n in "abc"))

    asyncio.run(go())
    assert order == ["a"] * 20 + ["b"] * 20 + ["c"] * 20


class Stub(Target):
    source = "together_queue"

    async def poll(self, now: float) -> None:  # type: ignore[override]
        raise NotImplementedError


def snapshot(n: int) -> list[tuple[Target, TargetHealth]]:
    out: list[tuple[Target, TargetHealth]] = []
    for i in range(n):
        health = TargetHealth(
            up=i % 3 != 0,
            polled=i % 5 != 0,
            last_poll_timestamp=1.7e9 + i,
            last_duration=0.01,
            last_error_reason="" if i % 3 else "server_error",
            last_error_detail="" if i % 3 else "GET /x answered 500: <b>no</b>",
            series=2,
        )
        out.append((Stub(f"together_queue/m-{i:03d}", interval=15.0, timeout=1.0, settings=(i,)), health))
    return out


@pytest.mark.parametrize(
    "query", [TargetsQuery(), TargetsQuery(state="down", refresh=10), TargetsQuery(account="x")]
)
def test_streamed_pages_are_the_pages(query: TargetsQuery, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = snapshot(120)
    rows = status.rows(targets)
    monkeypatch.setattr(time, "time", lambda: 1.7e9 + 500)
    assert "".join(status.stream_html(targets, query, "/metrics")) == targets_page(
        rows, 1.7e9 + 500, query, "/metrics"
    )
    expected = json.dumps({"targets": select(rows, query.state, query.account)})
    assert "".join(status.stream_json(targets, query)) == expected


class Writer:
    """What a payload asks of aiohttp's stream writer."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.calls: list[str] = []

    async def write(self, chunk: memoryview) -> None:
        self.chunks.append(bytes(chunk))
        self.calls.append("write")

    async def drain(self) -> None:
        self.calls.append("drain")


def test_a_body_goes_out_in_slices_each_after_a_drain() -> None:
    parts = [b"a" * (SLICE * 2 + 10), b"", b"b" * 5, b"c" * SLICE]
    payload = SlicedPayload(parts)
    writer = Writer()
    asyncio.run(payload.write(writer))  # type: ignore[arg-type]
    assert payload.size == sum(map(len, parts))
    assert b"".join(writer.chunks) == b"".join(parts)
    assert max(map(len, writer.chunks)) == SLICE
    assert writer.calls == ["write", "drain"] * len(writer.chunks)
