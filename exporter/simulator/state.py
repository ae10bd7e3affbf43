"""Shared simulator state: accepted keys, the clock and the request log."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SimState:
    api_keys: frozenset[str]
    clock: Callable[[], float] = time.time
    started_at: float = field(default_factory=time.time)
    # (method, route template) → number of requests, for tests and benchmarks.
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
