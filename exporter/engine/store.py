"""The current exposition: immutable rendered snapshots, a target's data and health.

A poll replaces its target's snapshots, one call each; a scrape joins cached bytes and
never waits for a poll. The work is kept proportional to what changed:

- ``put`` files each of the target's rendered families under that family, and marks
  the family dirty only when the target's bytes for it actually differ (an unchanged
  queue depth or ``_info`` line dirties nothing);
- a scrape re-joins only dirty families (one C-level join of the family's chunks),
  then joins the per-family blobs in name order;
- the store keeps no joined copy of the whole exposition (it cost time and memory
  on every change): an uncompressed response joins the blobs once for itself;
- for gzip, each family is compressed on its own into a byte-aligned raw-deflate
  segment that stays cached while the family is clean. Segments made by independent
  compressors can be concatenated into one valid deflate stream, so a scrape
  compresses only dirty families plus the small per-scrape suffix, and wraps the
  result in a single gzip member (every client decodes that).

Compression uses ISA-L (the ``isal`` package): at level 1 it is much faster than
zlib and compresses better (figures in bench/README.md).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from isal import isal_zlib

from exporter.core.exposition import Family, Rendered

GZIP_LEVEL = 1
# A gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# The final (empty) deflate block that ends a stream made of sync-flushed segments.
_FINAL_BLOCK = zlib.compressobj(1, zlib.DEFLATED, -15).flush()


def deflate_segment(data: bytes) -> bytes:
    """``data`` as raw deflate blocks that end byte-aligned and are not final.

    A fresh compressor never refers back past its own start, so such segments can
    be concatenated in any order into one stream.
    """
    comp = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush(isal_zlib.Z_SYNC_FLUSH)


def crc32(parts: Iterable[bytes], crc: int = 0) -> int:
    for part in parts:
        crc = isal_zlib.crc32(part, crc)
    return crc


def gzip_member_parts(segments: list[bytes], crc: int, size: int) -> list[bytes]:
    """One gzip member around concatenated deflate segments of ``size`` bytes with ``crc``,
    as parts to send one after the other (the segments are not copied)."""
    trailer = struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)
    return [_GZIP_HEADER, *segments, _FINAL_BLOCK, trailer]


@dataclass(slots=True)
class _FamilyEntry:
    """All snapshots' rendered lines of one family, and the cached results built from them.

    The header comes from the first snapshot that brought the family; later ones
    with the same type only add lines.
    """

    family: Family
    chunks: dict[str, bytes] = field(default_factory=dict)
    blob: bytes | None = None
    deflated: bytes | None = None


class Store:
    """Snapshots by key (a target's data and its health are filed separately, so a
    failing target's last data stays in place while its health changes)."""

    def __init__(self) -> None:
        # Only the sample lines are kept (a dict of str and bytes, which the garbage
        # collector does not track); the families' metadata lives in _families.
        self._snapshots: dict[str, dict[str, bytes]] = {}
        # ``Rendered.plain`` of the few snapshots that have one, for ``snapshot``.
        self._plain: dict[str, Mapping[str, bytes]] = {}
        self._families: dict[str, _FamilyEntry] = {}
        self._dirty: set[str] = set()
        self._order: list[str] | None = []
        # The current exposition as per-family blobs in name order, with its length.
        self._cached: list[bytes] | None = []
        self._cached_size = 0
        self._cached_crc: int | None = None
        self._cached_gzip_head: bytes | None = None

    # --- writes (from polls) ----------------------------------------------------------

    def put(self, key: str, rendered: Rendered) -> None:
        old = self._snapshots.get(key)
        lines = rendered.lines
        self._snapshots[key] = lines
        if rendered.plain:
            self._plain[key] = rendered.plain
        elif self._plain:
            self._plain.pop(key, None)
        meta = rendered.meta
        for name, chunk in lines.items():
            if old is not None and old.get(name) == chunk:
                continue
            self._set_chunk(name, meta[name], key, chunk)
        if old is not None:
            for name in old:
                if name not in lines:
                    self._drop_chunk(name, key)

    def remove(self, key: str) -> None:
        old = self._snapshots.pop(key, None)
        self._plain.pop(key, None)
        if old is not None:
            for name in old:
                self._drop_chunk(name, key)

    def _set_chunk(self, name: str, family: Family, key: str, lines: bytes) -> None:
        entry = self._families.get(name)
        if entry is None:
            entry = self._families[name] = _FamilyEntry(family)
            self._order = None
        elif entry.family.type != family.type:
            # Two sources declaring one family with two types would make the whole
            # scrape invalid; the later one is left out (a translator bug, caught in tests).
            return
        entry.chunks[key] = lines
        self._mark(name)

    def _drop_chunk(self, name: str, key: str) -> None:
        entry = self._families.get(name)
        if entry is None or entry.chunks.pop(key, None) is None:
            return
        if not entry.chunks:
            del self._families[name]
            self._order = None
        self._mark(name)

    def _mark(self, name: str) -> None:
        self._dirty.add(name)
        self._cached = None
        self._cached_gzip_head = None

    # --- reads ------------------------------------------------------------------------

    def snapshot(self, key: str) -> Rendered | None:
        """What ``put`` last filed under ``key`` and the exposition shows (the family of
        each name as the store knows it), or None."""
        lines = self._snapshots.get(key)
        if lines is None:
            return None
        meta: dict[str, Family] = {}
        for name in lines:
            entry = self._families.get(name)
            if entry is not None and key in entry.chunks:
                meta[name] = entry.family
        plain = self._plain.get(key, {})
        return Rendered(
            meta, {name: lines[name] for name in meta}, plain={n: plain[n] for n in meta if n in plain}
        )

    def _refresh(self) -> list[bytes]:
        if self._cached is not None:
            return self._cached
        for name in self._dirty:
            entry = self._families.get(name)
            if entry is not None:
                entry.blob = entry.family.header() + b"".join(entry.chunks.values())
                entry.deflated = None
        self._dirty.clear()
        if self._order is None:
            self._order = sorted(self._families)
        families = self._families
        blobs = [families[n].blob for n in self._order]
        self._cached = [b for b in blobs if b is not None]
        self._cached_size = sum(len(b) for b in self._cached)
        self._cached_crc = None
        return self._cached

    def exposition_parts(self) -> list[bytes]:
        """The exposition as blobs to send one after the other (do not modify the list)."""
        return self._refresh()

    def exposition_gzip_parts(self, suffix: bytes) -> list[bytes]:
        """The exposition followed by ``suffix``, as one gzip member in parts to send one
        after the other.

        Only families that changed since the last scrape are compressed again, and the
        compressed families are one cached part, shared by every scrape until one
        changes; the suffix (the parts rendered on every scrape) is compressed each time.
        """
        parts = self._refresh()
        if self._cached_gzip_head is None:
            head: list[bytes] = []
            assert self._order is not None
            for name in self._order:
                entry = self._families[name]
                if entry.deflated is None:
                    assert entry.blob is not None
                    entry.deflated = deflate_segment(entry.blob)
                head.append(entry.deflated)
            self._cached_gzip_head = b"".join(head)
        if self._cached_crc is None:
            self._cached_crc = crc32(parts)
        crc = crc32([suffix], self._cached_crc)
        size = self._cached_size + len(suffix)
        return gzip_member_parts([self._cached_gzip_head, deflate_segment(suffix)], crc, size)
