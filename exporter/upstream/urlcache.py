"""Parsed request URLs, kept for the requests a target repeats at every poll.

httpx parses a URL given as text and checks every character of it, in Python: for a
Baseten read naming a dozen metrics that is a large share of the request's CPU. Most
requests are the same at every poll (a queue's, a deployment's CURRENT read, a job's
own object); their callers say so, and their URLs are parsed once. Requests that
never repeat (a window's bounds or a read cursor in the query) are not kept.

Kept URLs live in two generations. A new one starts when the current one is
``GENERATION_SECONDS`` old or holds ``GENERATION_SIZE`` URLs; the current one then
becomes the previous one, whose URLs move back on their next use and are otherwise
dropped with it. A URL not asked for during a whole generation (a removed target's)
is therefore gone within two, and what is kept is about the URLs of the targets that
polled in the last two generations, never more than twice the size.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

# Long enough for every usual poll interval to come round several times in a generation.
GENERATION_SECONDS = 900.0
# Well above the number of targets one vendor account has.
GENERATION_SIZE = 16_384


class UrlCache:
    """httpx URLs by their text (one cache per vendor client: its requests share a base URL)."""

    def __init__(
        self,
        generation_size: int = GENERATION_SIZE,
        generation_seconds: float = GENERATION_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size = generation_size
        self._seconds = generation_seconds
        self._clock = clock
        self._started = clock()
        self._current: dict[str, httpx.URL] = {}
        self._previous: dict[str, httpx.URL] = {}

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def get(self, text: str) -> httpx.URL:
        """The parsed ``text``, kept for the next request for it."""
        url = self._current.get(text)
        if url is not None:
            return url
        url = self._previous.pop(text, None) or httpx.URL(text)
        now = self._clock()
        if len(self._current) >= self._size or now - self._started >= self._seconds:
            self._previous = self._current
            self._current = {}
            self._started = now
        self._current[text] = url
        return url
