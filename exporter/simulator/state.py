"""Shared simulator state: accepted keys, the clock and the request log."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

LOG_LIMIT = 200_000


@dataclass
class LoggedRequest:
    t: float  # wall time on arrival
    method: str
    route: str
    path: str  # with the query string
    status: int | None = None  # set once answered; None for a dropped connection


@dataclass
class SimState:
    api_keys: frozenset[str]
    clock: Callable[[], float] = time.time
    # The simulator's clock when it started: the default scenario's time zero.
    started_at: float = field(init=False)
    # (method, route template) → number of requests, for tests and benchmarks.
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Every request with its arrival time, newest last (bounded), e.g. to check a rate.
    log: deque[LoggedRequest] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    def record(self, method: str, route: str, path: str) -> LoggedRequest:
        self.requests[(method, route)] += 1
        entry = LoggedRequest(time.time(), method, route, path)
        self.log.append(entry)
        return entry
