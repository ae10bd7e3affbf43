"""The targets this replica polls, in groups: the config's own, and each discovery's finds.

A group is replaced as a whole (the config's on each load, a discovery's after each of
its successful polls); ``sync`` works out which targets that adds and removes, and the
poller acts on it. Pure bookkeeping: no I/O, no scheduling, nothing awaited.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from exporter.sharding import Shard
from exporter.sources.base import Discovery, Target

# The group of the config's own targets; a discovery's group is named by its id.
STATIC = ""


@dataclass
class Changes:
    """What one ``sync`` did: targets to start polling, and targets to stop and close."""

    added: list[Target] = field(default_factory=list)
    removed: list[Target] = field(default_factory=list)


class TargetSet:
    """Targets by id, and the group that owns each.

    When sharded, only this shard's targets are kept; discoveries are kept on every
    shard, each keeping its share of what they find (see exporter.sharding).
    """

    def __init__(self, shard: Shard) -> None:
        self._shard = shard
        self._targets: dict[str, Target] = {}
        self._group_of: dict[str, str] = {}
        self._groups: dict[str, set[str]] = {STATIC: set()}

    def __len__(self) -> int:
        return len(self._targets)

    def __iter__(self) -> Iterator[Target]:
        # Over a copy: a discovery's poll may change the set while a caller iterates.
        return iter(list(self._targets.values()))

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._targets

    def get(self, target_id: str) -> Target | None:
        return self._targets.get(target_id)

    def is_current(self, target: Target) -> bool:
        """False once a reload or a discovery has removed or replaced ``target``."""
        return self._targets.get(target.id) is target

    def group(self, group: str) -> frozenset[str]:
        return frozenset(self._groups.get(group, ()))

    def sync(self, group: str, targets: list[Target]) -> Changes:
        """Make ``group`` own exactly ``targets``: add new ones, drop gone or changed ones.

        A target whose id and settings are unchanged is kept as it is, state and all
        (it takes the new one's other data through ``update_from``). An id already
        owned by another group stays with that group (the config's own targets win
        over discovered duplicates). Removing a discovery removes what it found.
        """
        owned = self._groups.setdefault(group, set())
        wanted: dict[str, Target] = {}
        for t in targets:
            if not isinstance(t, Discovery) and not self._shard.owns(t.id):
                continue
            if self._group_of.get(t.id, group) != group:
                continue
            wanted.setdefault(t.id, t)
        changes = Changes()
        for tid in list(owned):
            if tid not in owned:
                continue  # went with a discovery removed before it
            if tid not in wanted or wanted[tid].settings != self._targets[tid].settings:
                self._remove(tid, changes)
        for tid, target in wanted.items():
            kept = self._targets.get(tid)
            if kept is None:
                self._targets[tid] = target
                self._group_of[tid] = group
                owned.add(tid)
                changes.added.append(target)
            elif kept is not target:
                kept.update_from(target)
        return changes

    def _remove(self, tid: str, changes: Changes) -> None:
        target = self._targets.pop(tid)
        self._groups[self._group_of.pop(tid)].discard(tid)
        changes.removed.append(target)
        # A discovery takes the targets it found with it.
        for child in list(self._groups.get(tid, ())):
            self._remove(child, changes)
        self._groups.pop(tid, None)
