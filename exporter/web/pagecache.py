"""Rendered pages kept for a moment, rendered in short steps between the loop's other work.

Rendering ``/targets`` for thousands of targets takes tens of milliseconds of CPU; in
one go on the event loop, a hundred clients asking at once held every scrape behind
them for seconds. Here:

- each distinct query is rendered once however many ask for it at the same time, and
  the page is kept for ``ttl`` seconds: everyone asking the same meanwhile gets the
  same bytes;
- a page is rendered as a stream of text pieces, and the loop gets control back every
  ``STEP`` seconds of rendering, so a scrape waits for at most one step, never for a
  whole page (a thread would not do: sharing the interpreter lock with a render, the
  loop waits for the lock at each of its wake-ups);
- pages are rendered one at a time: a burst of different queries (refresh periods,
  say) waits in turn, and each turn of the loop holds at most one step of rendering;
- the snapshot pages are made from (every target with its health) is shared by all
  queries for ``ttl`` too, so a burst of different queries takes one snapshot;
- what is kept is dropped at once when ``version()`` changes (a reload, targets added
  or removed): a page never shows targets that are gone for a second more.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

S = TypeVar("S")

DEFAULT_TTL = 1.0
# Distinct queries kept at most: a page may be a few MB for a large fleet.
DEFAULT_ENTRIES = 8
# Rendering time between two returns to the loop.
STEP = 0.002
# Pieces rendered between two looks at the clock, and encoded together.
_PIECES_PER_CHECK = 8
_PIECES_PER_BATCH = 1024

Render = Callable[[S], Iterable[str]]


class PageCache(Generic[S]):
    """Pages by key, rendered in steps from a snapshot ``snapshot()`` shared for ``ttl``."""

    def __init__(
        self,
        snapshot: Callable[[], S],
        version: Callable[[], Hashable] = lambda: None,
        ttl: float = DEFAULT_TTL,
        entries: int = DEFAULT_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot_fn = snapshot
        self._version_fn = version
        self._version: Hashable = None
        self.ttl = ttl
        self.entries = entries
        self.clock = clock
        self._snapshot: tuple[float, S] | None = None
        self._pages: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._rendering: dict[Hashable, asyncio.Task[bytes]] = {}
        self._turn: asyncio.Lock | None = None
        self.renders = 0  # pages rendered so far (how often the cache missed)

    def snapshot(self) -> tuple[float, S]:
        """What pages are made from, and when it was taken: at most once per ``ttl``."""
        now = self.clock()
        if self._snapshot is None or now - self._snapshot[0] >= self.ttl:
            self._snapshot = (now, self._snapshot_fn())
        return self._snapshot

    async def page(self, key: Hashable, render: Render[S]) -> bytes:
        """The page for ``key``: kept, being rendered, or rendered now from the snapshot."""
        version = self._version_fn()
        if version != self._version:
            self._version, self._snapshot = version, None
            self._pages.clear()
            self._rendering.clear()  # renders under way finish for those who asked
        kept = self._pages.get(key)
        if kept is not None and self.clock() - kept[0] < self.ttl:
            return kept[1]
        task = self._rendering.get(key)
        if task is None:
            taken, snapshot = self.snapshot()
            task = asyncio.ensure_future(self._render(render, snapshot))
            self._rendering[key] = task
            self.renders += 1
            task.add_done_callback(lambda done: self._keep(key, version, taken, done))
        # Shielded: a client that goes away does not cancel the page for the others.
        return await asyncio.shield(task)

    async def _render(self, render: Render[S], snapshot: S) -> bytes:
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            return await _in_steps(render(snapshot))

    def _keep(self, key: Hashable, version: Hashable, taken: float, done: asyncio.Task[bytes]) -> None:
        if self._rendering.get(key) is done:
            del self._rendering[key]
        if done.cancelled() or done.exception() is not None or version != self._version:
            return
        self._pages[key] = (taken, done.result())
        self._pages.move_to_end(key)
        now = self.clock()
        for old in [k for k, (t, _) in self._pages.items() if now - t >= self.ttl]:
            del self._pages[old]
        while len(self._pages) > self.entries:
            self._pages.popitem(last=False)

    def close(self) -> None:
        for task in self._rendering.values():
            task.cancel()
        self._rendering.clear()
        self._pages.clear()
        self._snapshot = None


async def _in_steps(pieces: Iterable[str]) -> bytes:
    """Join ``pieces`` into UTF-8, returning to the loop whenever a step's time is up.

    The text is encoded a batch of pieces at a time: a page of thousands of rows is
    some hundred thousand small pieces, which held whole until the end would take
    several times the page's size.
    """
    done: list[bytes] = []
    batch: list[str] = []
    step_ends = time.perf_counter() + STEP
    for piece in pieces:
        batch.append(piece)
        if len(batch) % _PIECES_PER_CHECK == 0:
            if len(batch) >= _PIECES_PER_BATCH:
                done.append("".join(batch).encode())
                batch.clear()
            if time.perf_counter() > step_ends:
                await asyncio.sleep(0)
                step_ends = time.perf_counter() + STEP
    done.append("".join(batch).encode())
    return b"".join(done)
