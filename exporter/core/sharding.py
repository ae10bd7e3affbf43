"""Splitting the targets of one config across replicas, the way kube-state-metrics does.

Every replica loads the same config and keeps only the targets whose id hashes to its
own shard, so M replicas together poll each target exactly once, without talking to
each other. The hash is of the stable target id, so a target stays on its shard across
restarts and reloads, and a change of the shard count moves only the targets it must.

Discoveries are the exception: every shard runs every discovery (each needs the full
list to pick its share of the discovered targets), but only the discovery's own
shard exports what the discovery itself yields (its samples and health), so the union
of all shards' series is exactly what one unsharded exporter would serve.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

_ORDINAL_RE = re.compile(r"-(\d+)$")


def shard_of(target_id: str, total: int) -> int:
    """The shard that owns ``target_id``: a stable hash of the id, modulo ``total``.

    Python's ``hash()`` is salted per process, so a digest is used instead; every
    replica, on every machine and after every restart, computes the same owner.
    """
    digest = hashlib.blake2b(target_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % total


def ordinal_from_pod_name(name: str) -> int:
    """``inference-exporter-3`` → 3: a StatefulSet names its pods ``<set>-<ordinal>``."""
    m = _ORDINAL_RE.search(name.strip())
    if m is None:
        raise ValueError(f"pod name {name!r} does not end in -<ordinal> (is it a StatefulSet pod?)")
    return int(m.group(1))


@dataclass(frozen=True, slots=True)
class Shard:
    """This replica's place among ``total`` shards. The default owns everything."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"the total number of shards must be at least 1, got {self.total}")
        if not 0 <= self.index < self.total:
            raise ValueError(
                f"shard {self.index} is out of range for {self.total} total shards (0..{self.total - 1})"
            )

    def owns(self, target_id: str) -> bool:
        return self.total == 1 or shard_of(target_id, self.total) == self.index


def resolve_shard(
    shard: int | None, total: int, from_pod_name: bool, env: Mapping[str, str], hostname: str
) -> Shard:
    """The shard from the command line: ``--shard N``, or the pod name's ordinal.

    With ``--shard.from-pod-name`` the name comes from ``POD_NAME`` (set it from the
    downward API), else from the host name, which a StatefulSet pod has as its own.
    Raises ValueError with a message for the operator.
    """
    if from_pod_name:
        if shard is not None:
            raise ValueError("use either --shard or --shard.from-pod-name, not both")
        name = env.get("POD_NAME", "").strip() or hostname
        shard = ordinal_from_pod_name(name)
    return Shard(shard or 0, total)
