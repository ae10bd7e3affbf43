"""Shared simulator state: accepted keys and their organisations, the clock and the request log."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from exporter.simulator.scenario import StoryClock

LOG_LIMIT = 200_000
# The organisation of the keys given without one (``api_keys``).
DEFAULT_ORG = "default"


@dataclass
class LoggedRequest:
    t: float  # wall time on arrival
    method: str
    route: str
    path: str  # with the query string
    status: int | None = None  # set once answered; None for a dropped connection
    org: str | None = None  # the organisation the key belongs to; None for an unknown key
    # Which key was sent, as ``key_fingerprint`` gives it (never the key): tests see
    # when a client switched keys.
    key: str | None = None


def key_fingerprint(key: str) -> str:
    """A short fingerprint of an API key, as the request log names the key a request sent."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass
class SimState:
    """``api_keys`` belong to the default organisation; ``org_keys`` maps each further
    key to its organisation (a Together organisation or Baseten workspace: its own
    queues, jobs, fine-tunes, models and deployments)."""

    api_keys: frozenset[str]
    clock: Callable[[], float] = time.time
    # The simulator's clock when it started: the default scenario's time zero.
    started_at: float = field(init=False)
    # (method, route template) → number of requests, for tests and benchmarks.
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Every request with its arrival time, newest last (bounded), e.g. to check a rate.
    log: deque[LoggedRequest] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))
    org_keys: Mapping[str, str] = field(default_factory=dict)
    # How many times as fast as its own timetable the default scenario plays, and how
    # many seconds of ``clock`` after the start it begins (until then all is calm).
    speed: float = 1.0
    delay: float = 0.0
    # Where the default scenario is at a time of ``clock``.
    story: StoryClock = field(init=False)

    def org_of(self, key: str) -> str | None:
        """The organisation a key belongs to; None for a key that belongs to none."""
        if key in self.api_keys:
            return DEFAULT_ORG
        return self.org_keys.get(key)

    def org_names(self) -> list[str]:
        return sorted({DEFAULT_ORG, *self.org_keys.values()})

    def __post_init__(self) -> None:
        self.started_at = self.clock()
        self.story = StoryClock(self.started_at + self.delay, self.speed)

    def record(self, method: str, route: str, path: str) -> LoggedRequest:
        self.requests[(method, route)] += 1
        entry = LoggedRequest(time.time(), method, route, path)
        self.log.append(entry)
        return entry
