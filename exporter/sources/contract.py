"""What a vendor package gives the exporter, and the registry that lists them.

A vendor is one package under ``exporter/sources/`` that declares one ``Vendor``, plus
its line in ``exporter/sources/registry.py``. Everything generic goes by these
declarations and names no vendor: the config loader (sections, semantic checks, keys),
the account listing and ``watches_nothing``, the filter warnings, target building, the
reserved labels, the purity check, the simulator and the golden expositions. The root
config model keeps one field per vendor for pydantic and mypy, checked against the
registry by the tests. How to add one: docs/development.md#adding-a-vendor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

from exporter.configkit.common import GlobalConfig, Schedule
from exporter.configkit.problems import Path
from exporter.configkit.sections import A, Check, Section
from exporter.core.exposition import Family
from exporter.core.scope import EXPORTER_LABELS, MetricFilter, Scope, merged_labels
from exporter.sources.base import Target

if TYPE_CHECKING:
    from exporter.upstream.api import Clients

# A vendor's name is its config section's key, the first part of its clients' keys and
# of its sources' names (``together_queue``): lower case, digits and _.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class AccountScope:
    """Makes the scopes of one account's targets, all sharing its filter and series limit."""

    def __init__(
        self,
        account: str,
        labels: dict[str, str],
        metric_filter: MetricFilter,
        max_series: int,
        native_namespaces: tuple[str, ...] = (),
    ) -> None:
        self.account = account
        self.labels = labels
        self.filter = metric_filter
        self.max_series = max_series
        # The namespaces of the config's own sources (``Vendor.namespaces``, every
        # account's): what its relays may not emit into.
        self.native_namespaces = native_namespaces

    def of(self, *inner: dict[str, str]) -> Scope:
        return Scope(self.account, merged_labels(self.labels, *inner), self.filter, self.max_series)


def schedule(g: GlobalConfig, override: Schedule) -> tuple[float, float]:
    """A target's (interval, timeout): its own settings, else the global defaults."""
    interval = override.poll_interval or g.poll_interval
    timeout = override.timeout or g.timeout
    return interval, min(timeout, interval)


# Builds one kind of target of one account: from the global section, the account, the
# scope its targets share and the clients they look theirs up in.
Builder = Callable[[GlobalConfig, A, AccountScope, "Clients"], list[Target]]


def _no_namespaces(account: Any) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class FilterKind:
    """One kind of target an account has, for the warnings about metric filters: what
    a warning calls it, the names it shows, and the families its targets may yield."""

    what: str
    shown: tuple[str, ...]
    families: tuple[str, ...]
    # Families named from vendor data (a fine-tune job's logged keys, a relayed body's
    # families) start with this ("": any name): an expression may aim at one though no
    # name is known in advance. None: every family it may yield is in ``families``.
    open_prefix: str | None = None


@dataclass(frozen=True)
class Joined:
    """Families dashboards join the others on (names, status): an allow list that drops
    them while keeping other families is warned about."""

    families: tuple[str, ...]
    # What the join gives, as a warning says it: "deployment names and status".
    purpose: str


@dataclass(frozen=True)
class Vendor(Generic[A]):
    """Everything generic code needs to know about one vendor.

    ``families`` are the families with fixed names its targets can emit, each with its
    label names (declared on the ``Family`` next to the code that fills it); every label
    of them is reserved (``reserved_labels``), plus ``also_reserved`` for the labels of
    families named from vendor data. ``namespaces(account)``: the name prefixes of the
    families the account's own targets emit (``together_queue_`` when it has queues),
    which no relay of the config may emit into (``exporter.sources.relay.names``).
    ``pure_modules`` (relative to ``exporter.sources``) must import no network stack
    (tests/unit/test_vendor_contract.py checks it). Its simulator parts are listed under
    its name in ``exporter.simulator.parts``, which imports nothing of the exporter's,
    and its golden expositions in ``tests/golden/<name>.py``; the tests hold both to
    the registry.
    """

    name: str
    section: type[Section[A]]
    # Whether an account names a target or turns on a discovery: a config where no
    # account does watches nothing, which a reload must not take for an intent.
    watches: Callable[[A], bool]
    # Its builders, imported when targets are first built: the targets bring the network
    # stack, which reading and checking a config must not load.
    builders: Callable[[], Sequence[Builder[A]]]
    families: tuple[Family, ...]
    filter_kinds: Callable[[A], Iterable[FilterKind]]
    checks: tuple[Check[A], ...] = ()
    also_reserved: frozenset[str] = frozenset()
    joined: Joined | None = None
    pure_modules: tuple[str, ...] = ()
    namespaces: Callable[[A], Iterable[str]] = _no_namespaces

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"vendor name {self.name!r}: lower case letters, digits and _")

    @property
    def reserved_labels(self) -> frozenset[str]:
        """The label names its families carry, which target labels may not take."""
        own = {label for family in self.families for label in family.labels}
        return frozenset(own - EXPORTER_LABELS) | self.also_reserved

    def accounts(self, section: Section[A]) -> list[tuple[Path, A]]:
        return section.account_list()

    def targets(self, g: GlobalConfig, account: A, scope: AccountScope, clients: Clients) -> list[Target]:
        """Every builder's targets for one account, in the account's scope."""
        return [target for build in self.builders() for target in build(g, account, scope, clients)]


@dataclass(frozen=True)
class Registry:
    """The vendors, in the order their sections, accounts and targets are listed."""

    vendors: tuple[Vendor[Any], ...]
    # Every label name the exporter or one of the vendors sets.
    reserved_labels: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = [v.name for v in self.vendors]
        if len(set(names)) != len(names):
            raise ValueError(f"a vendor is registered twice: {names}")
        reserved = EXPORTER_LABELS.union(*(v.reserved_labels for v in self.vendors))
        object.__setattr__(self, "reserved_labels", reserved)

    def __iter__(self) -> Iterator[Vendor[Any]]:
        return iter(self.vendors)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.vendors)
