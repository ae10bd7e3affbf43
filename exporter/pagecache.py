"""Rendered pages kept for a moment, rendered on a thread of their own.

Rendering ``/targets`` for thousands of targets takes tens of milliseconds of CPU; on
the event loop, a hundred clients asking at once would hold every scrape behind them
for seconds. Here a page is rendered on one worker thread (the loop only takes the
snapshot the page is made from), each distinct query once however many ask for it at
the same time, and the result is kept for ``ttl`` seconds: during that time everyone
asking the same gets the same bytes. Queries that differ (a filter, a refresh period)
wait their turn on the worker; the loop keeps serving scrapes meanwhile.

The snapshot (every target with its health) is shared by all queries for ``ttl`` too,
so a burst of different queries costs the loop one snapshot, not one each.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

S = TypeVar("S")

DEFAULT_TTL = 1.0
# Distinct queries kept at most: each may be a few MB for a large fleet.
DEFAULT_ENTRIES = 8


class PageCache(Generic[S]):
    """Pages by key, rendered off the loop from a snapshot ``snapshot()`` taken on it."""

    def __init__(
        self,
        snapshot: Callable[[], S],
        ttl: float = DEFAULT_TTL,
        entries: int = DEFAULT_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot_fn = snapshot
        self.ttl = ttl
        self.entries = entries
        self.clock = clock
        self._snapshot: tuple[float, S] | None = None
        self._pages: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._rendering: dict[Hashable, asyncio.Future[bytes]] = {}
        self._worker: ThreadPoolExecutor | None = None
        self.renders = 0  # pages rendered so far (a measure of how well the cache works)

    def snapshot(self) -> S:
        """What pages are made from: taken at most once per ``ttl``."""
        now = self.clock()
        if self._snapshot is None or now - self._snapshot[0] >= self.ttl:
            self._snapshot = (now, self._snapshot_fn())
        return self._snapshot[1]

    async def page(self, key: Hashable, render: Callable[[S], bytes]) -> bytes:
        """The page for ``key``: kept, being rendered, or rendered now by ``render(snapshot)``."""
        now = self.clock()
        kept = self._pages.get(key)
        if kept is not None and now - kept[0] < self.ttl:
            return kept[1]
        pending = self._rendering.get(key)
        if pending is None:
            pending = self._render(key, render, self.snapshot())
        # Shielded: a client that goes away does not cancel the page for the others.
        return await asyncio.shield(pending)

    def _render(self, key: Hashable, render: Callable[[S], bytes], snapshot: S) -> asyncio.Future[bytes]:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pages")
        started = self.clock()
        future = asyncio.get_running_loop().run_in_executor(self._worker, render, snapshot)
        self._rendering[key] = future
        self.renders += 1

        def keep(done: asyncio.Future[bytes]) -> None:
            self._rendering.pop(key, None)
            if done.cancelled() or done.exception() is not None:
                return
            self._pages[key] = (started, done.result())
            self._pages.move_to_end(key)
            self._expire()

        future.add_done_callback(keep)
        return future

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, (t, _) in self._pages.items() if now - t >= self.ttl]:
            del self._pages[key]
        while len(self._pages) > self.entries:
            self._pages.popitem(last=False)

    def close(self) -> None:
        """Stop the worker (a render in progress finishes; queued ones are dropped)."""
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None
        self._pages.clear()
        self._snapshot = None
