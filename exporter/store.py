"""The current exposition: one immutable rendered snapshot per target.

A poll replaces its target's snapshot in one assignment; a scrape joins the cached
bytes of every snapshot (one header per family) and never waits for a poll. The
joined result is cached until a snapshot changes, so back-to-back scrapes cost a
dictionary lookup.
"""

from __future__ import annotations

import gzip

from exporter.exposition import Rendered, assemble


class Store:
    def __init__(self) -> None:
        self._snapshots: dict[str, Rendered] = {}
        self._generation = 0
        self._cached_generation = -1
        self._cached: bytes = b""
        self._cached_gzip: bytes | None = None

    def put(self, target_id: str, rendered: Rendered) -> None:
        self._snapshots[target_id] = rendered
        self._generation += 1

    def remove(self, target_id: str) -> None:
        if self._snapshots.pop(target_id, None) is not None:
            self._generation += 1

    def get(self, target_id: str) -> Rendered | None:
        return self._snapshots.get(target_id)

    def targets(self) -> list[str]:
        return list(self._snapshots)

    def _refresh(self) -> None:
        if self._cached_generation != self._generation:
            self._cached = assemble(self._snapshots.values())
            self._cached_gzip = None
            self._cached_generation = self._generation

    def exposition(self) -> bytes:
        self._refresh()
        return self._cached

    def exposition_gzip(self) -> bytes:
        """The same bytes gzipped, compressed once per change.

        Concatenated gzip members are one valid gzip stream (RFC 1952), so callers may
        append another member for parts that change on every scrape.
        """
        self._refresh()
        if self._cached_gzip is None:
            self._cached_gzip = gzip.compress(self._cached, compresslevel=1, mtime=0)
        return self._cached_gzip
