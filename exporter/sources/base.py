"""What the daemon needs to know about a target, whatever its source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Protocol

from exporter.core.errors import LimitExceeded
from exporter.core.exposition import Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope


class SourceSettings(Hashable, Protocol):
    """What every source's frozen settings dataclass has: its schedule and its scope."""

    @property
    def interval(self) -> float: ...

    @property
    def timeout(self) -> float: ...

    @property
    def scope(self) -> Scope: ...


MAX_TARGETS_KEY = "max_targets"
# Targets one discovery may find: several times what a large tenant runs (the bench's
# has 2,200 deployments and 1,100 fine-tunes) and far below what would stall polls.
DEFAULT_MAX_TARGETS = 10_000


def too_many_targets(count: int, what: str, limit: int, narrow: str) -> LimitExceeded:
    """The error of a discovery that found ``count`` ``what``, more than its ``max_targets``."""
    return LimitExceeded(
        "too_many_targets",
        MAX_TARGETS_KEY,
        f"found {count} {what}, more than the discovery's {MAX_TARGETS_KEY} ({limit}): raise it, "
        f"or {narrow}; the targets it found before are kept",
    )


class LimitCounter(Protocol):
    """Where a target counts the limits its vendor's answers went past (an account's
    ``UpstreamStats``)."""

    def limit_hit(self, source: str, limit: str, n: int = 1) -> None: ...


@contextmanager
def counted_limits(counter: LimitCounter, source: str) -> Iterator[None]:
    """Count a poll that a limit refused (``LimitExceeded``), and let it fail."""
    try:
        yield
    except LimitExceeded as exc:
        counter.limit_hit(source, exc.limit)
        raise


class Target(ABC):
    """One thing to poll on a schedule.

    ``id`` is stable across reloads and restarts (it keys scheduling, the status page
    and sharding). ``settings`` is everything from the config that shapes a poll: on
    reload a target whose id is unchanged is kept, with its state (counters, last seen
    steps), and takes its new settings in place (``reconfigure``) instead of being
    rebuilt. Each source's target takes its settings as one frozen dataclass
    (its vendor's ``build`` module makes them from the config).
    ``scope`` (part of those settings) is the target's account, labels and metric
    filter: every series it yields, its health included, is rendered through it.
    """

    source: str = ""
    # When the thing the target watches finished (a fine-tune job reached a terminal
    # status): from then on it yields what it last read, and asks the vendor nothing.
    finished_at: float | None = None

    def __init__(
        self,
        target_id: str,
        *,
        interval: float,
        timeout: float,
        settings: Hashable,
        scope: Scope = DEFAULT_SCOPE,
    ) -> None:
        self.id = target_id
        self.interval = interval
        self.timeout = timeout
        self.settings = settings
        self.scope = scope

    def _init_from_settings(
        self, target_id: str, settings: SourceSettings, *, timeout: float | None = None
    ) -> None:
        """``__init__`` for a target built from its source's settings object, which gives its
        schedule and scope; ``timeout`` when a request's timeout is not the settings' own."""
        Target.__init__(
            self,
            target_id,
            interval=settings.interval,
            timeout=settings.timeout if timeout is None else timeout,
            settings=settings,
            scope=settings.scope,
        )

    @property
    def account(self) -> str:
        return self.scope.account

    def kept_until(self) -> float | None:
        """When a finished target's series go (its retention's end); None while unfinished."""
        return None

    def expired(self, now: float) -> bool:
        """True once a finished target's series have gone: it is retired, and nothing it
        could yield would change any more, so the poller stops polling it."""
        kept = self.kept_until()
        return kept is not None and now > kept

    @abstractmethod
    async def poll(self, now: float) -> Rendered:
        """Fetch and translate. Raise UpstreamError on failure. ``now`` is wall-clock seconds."""

    async def close(self) -> None:  # noqa: B027 - most targets hold nothing to release
        """Release what the target holds (e.g. cancel a probe job) when it is removed."""

    def update_from(self, other: Target) -> None:  # noqa: B027 - most targets have nothing to take
        """Take fresh non-settings data (e.g. metadata) from an equal target built later.

        When a rebuilt target has the same id, the daemon keeps the running object
        (and its state) and calls this with the new one.
        """

    def reconfigure(self, new: Target) -> bool:
        """Take the settings of ``new`` (the same target built from a newer config) in
        place, keeping this target's state: counters, cursors, histograms, last values.

        Returns False when the new settings cannot apply to the state this target holds
        (a probe's histogram buckets, say): the daemon then replaces the target. A
        source whose target copies parts of its settings into attributes overrides this
        to copy them again.
        """
        if type(new) is not type(self) or new.id != self.id:
            return False
        self.interval = new.interval
        self.timeout = new.timeout
        self.settings = new.settings
        self.scope = new.scope
        return True


class Discovery(Target):
    """A target whose poll lists things to watch and returns a target for each.

    Its own poll is scheduled, timed and health-tracked like any target's (so a
    failing list call shows as that discovery being down). The poller calls
    :meth:`discover` and replaces the discovery's group of targets with the ones it
    returned; after a failed poll the previous group stays, so a flaky list endpoint
    never drops targets.
    """

    @abstractmethod
    async def discover(self, now: float) -> tuple[Rendered, list[Target]]:
        """List the vendor's objects; return samples about them (e.g. ``_info``) and targets."""

    def rebuild(self, found: Target) -> Target:
        """``found`` (a target this discovery returned) as the discovery's current
        settings would build it now: after a reload changed the discovery's settings,
        the daemon reconfigures what it found with these, without listing again."""
        return found

    async def poll(self, now: float) -> Rendered:
        """Only the samples of :meth:`discover`, for a caller that does not keep targets."""
        rendered, _ = await self.discover(now)
        return rendered
