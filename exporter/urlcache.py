"""Parsed request URLs, kept for the requests a target repeats at every poll.

httpx parses a URL given as text and checks every character of it, in Python: for a
Baseten read naming a dozen metrics that is a large share of the request's CPU. Most
requests are the same at every poll (a queue's, a deployment's CURRENT read, a job's
own object); their callers say so, and their URLs are parsed once. Requests that
never repeat (a window's bounds or a read cursor in the query) are not kept.

Kept URLs live in two generations: when the current one is full it becomes the
previous one, and an entry of the previous one moves back on its next use, so a URL
not asked for during a whole generation (a removed target's) is dropped and memory
stays bounded by the targets' count.
"""

from __future__ import annotations

import httpx

# Parsed URLs in one generation: well above the number of targets one vendor account has.
GENERATION_SIZE = 16_384


class UrlCache:
    """httpx URLs by their text (one cache per vendor client: its requests share a base URL)."""

    def __init__(self, generation_size: int = GENERATION_SIZE) -> None:
        self._size = generation_size
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
        if len(self._current) >= self._size:
            self._previous = self._current
            self._current = {}
        self._current[text] = url
        return url
