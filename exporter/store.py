"""The current exposition: one immutable rendered snapshot per target.

A poll replaces its target's snapshot in one assignment; a scrape joins the cached
bytes of every snapshot (one header per family) and never waits for a poll. The
joined result is cached until a snapshot changes, so back-to-back scrapes cost a
dictionary lookup.
"""

from __future__ import annotations

import zlib

from exporter.exposition import Rendered, assemble


class Store:
    def __init__(self) -> None:
        self._snapshots: dict[str, Rendered] = {}
        self._generation = 0
        self._cached_generation = -1
        self._cached: bytes = b""
        self._cached_gzip: tuple[bytes, zlib._Compress] | None = None

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

    def exposition_gzip(self, suffix: bytes) -> bytes:
        """The exposition followed by ``suffix``, as one gzip stream.

        The cached part is compressed once per change and the compressor's state
        kept, so a scrape compresses only ``suffix`` (the parts that change on every
        scrape) on a copy of that state. The result is a single gzip member, which
        every client decodes (some stop after the first of several members).
        """
        self._refresh()
        if self._cached_gzip is None:
            comp = zlib.compressobj(1, zlib.DEFLATED, 31)
            head = comp.compress(self._cached) + comp.flush(zlib.Z_SYNC_FLUSH)
            self._cached_gzip = (head, comp)
        head, comp = self._cached_gzip
        tail = comp.copy()
        return head + tail.compress(suffix) + tail.flush()
