"""The targets this replica polls, in groups: the config's own, and each discovery's finds.

A group is replaced as a whole (the config's on each load, a discovery's after each of
its successful polls); ``sync`` works out which targets that adds, removes and
reconfigures in place, and the poller acts on it. Pure bookkeeping: no I/O, no
scheduling, nothing awaited.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from exporter.core.scope import Scope
from exporter.core.sharding import Shard
from exporter.sources.base import Discovery, Target

# The group of the config's own targets; a discovery's group is named by its id.
STATIC = ""


@dataclass(frozen=True, slots=True)
class Reconfigured:
    """A kept target that took new settings, with what it had before them."""

    target: Target
    scope: Scope
    interval: float


@dataclass
class Changes:
    """What one ``sync`` did: targets to start polling, targets to stop and close, and
    targets kept with new settings (their schedule and cached series may need redoing)."""

    added: list[Target] = field(default_factory=list)
    removed: list[Target] = field(default_factory=list)
    reconfigured: list[Reconfigured] = field(default_factory=list)


class TargetSet:
    """Targets by id, and the group that owns each.

    When sharded, only this shard's targets are kept; discoveries are kept on every
    shard, each keeping its share of what they find (see exporter.core.sharding).
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
        """Make ``group`` own exactly ``targets``: add new ids, drop gone ones, keep the rest.

        A target whose id is kept stays as it is, state and all: with equal settings it
        takes the new one's other data (``update_from``), with changed settings it takes
        them in place (``reconfigure``), or, when they cannot apply to its state, is
        replaced. A kept discovery whose settings changed hands its new settings on to
        what it found (``Discovery.rebuild``). The config's own targets win over
        discovered duplicates: a discovery's find whose id the config names is left
        out, and a target the config comes to name (a reload) replaces the one a
        discovery found, as it would have at start. Removing a discovery removes what
        it found.
        """
        changes = Changes()
        self._sync(group, targets, changes)
        # A find a discovery handed its new settings to, then replaced by the config's own
        # target of that id, was removed: only the targets still here were reconfigured.
        changes.reconfigured = [c for c in changes.reconfigured if self.is_current(c.target)]
        return changes

    def _sync(self, group: str, targets: list[Target], changes: Changes) -> None:
        owned = self._groups.setdefault(group, set())
        wanted: dict[str, Target] = {}
        for t in targets:
            if not isinstance(t, Discovery) and not self._shard.owns(t.id):
                continue
            if group != STATIC and self._group_of.get(t.id, group) != group:
                continue
            wanted.setdefault(t.id, t)
        for tid in list(owned):
            if tid in owned and tid not in wanted:  # (else went with a discovery removed before it)
                self._remove(tid, changes)
        for tid, target in wanted.items():
            kept = self._targets.get(tid)
            if kept is not None and self._group_of[tid] != group:
                # Found by a discovery, and now named by the config: the config's target
                # takes its place (the discovery's next finds leave it out).
                self._remove(tid, changes)
                kept = None
            if kept is None:
                self._add(group, target, changes)
            elif kept is target:
                continue
            elif kept.settings == target.settings:
                kept.update_from(target)
            else:
                before = Reconfigured(kept, kept.scope, kept.interval)
                if not kept.reconfigure(target):
                    self._remove(tid, changes)
                    self._add(group, target, changes)
                    continue
                kept.update_from(target)
                changes.reconfigured.append(before)
                if isinstance(kept, Discovery):
                    found = [self._targets[c] for c in sorted(self._groups.get(tid, ()))]
                    self._sync(tid, [kept.rebuild(t) for t in found], changes)

    def _add(self, group: str, target: Target, changes: Changes) -> None:
        self._targets[target.id] = target
        self._group_of[target.id] = group
        self._groups.setdefault(group, set()).add(target.id)
        changes.added.append(target)

    def _remove(self, tid: str, changes: Changes) -> None:
        target = self._targets.pop(tid)
        self._groups[self._group_of.pop(tid)].discard(tid)
        changes.removed.append(target)
        # A discovery takes the targets it found with it.
        for child in list(self._groups.get(tid, ())):
            self._remove(child, changes)
        self._groups.pop(tid, None)
