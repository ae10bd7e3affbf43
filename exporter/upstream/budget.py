"""A per-vendor request budget: at most ``rate`` requests per second, retries included.

Vendors count requests in fixed or sliding one-second windows, and a burst that
passes our own average still trips theirs. So the budget spaces requests evenly
(a token bucket holding one token): ``rate`` requests take ``1 + JITTER_MARGIN``
seconds, so no window of one second, wherever it starts, holds more than ``rate``
requests, even as the vendor sees them, after up to ``JITTER_MARGIN`` seconds of
network delay on one request and none on another.

Slots are handed out in order of asking. A caller that cannot get a slot before its
own deadline is refused at once instead of queueing past it, so a request storm
turns into quick local refusals, never into more traffic.

Sharding: N exporters splitting one vendor's targets each get ``rate / N``
(:func:`shard_rate`), so together they stay within the configured rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Seconds of network jitter the spacing absorbs in every window of one second.
JITTER_MARGIN = 0.1


class BudgetExhausted(Exception):
    """No request slot is free before the caller's deadline."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"next request slot in {wait:.2f}s, past the deadline")
        self.wait = wait


def shard_rate(rate: float, total_shards: int) -> float:
    """The share of a vendor's configured rate one of ``total_shards`` shards may use."""
    if total_shards < 1:
        raise ValueError("total_shards must be at least 1")
    return rate / total_shards


class RequestBudget:
    """Evenly spaced request slots at ``rate`` per second (``None``: unlimited)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._spacing = (1.0 + JITTER_MARGIN) / rate if rate else 0.0
        self._clock = clock
        self._next_free = 0.0

    def reserve(self, deadline: float) -> float:
        """Claim the next slot; return how long to wait for it.

        Raises BudgetExhausted, claiming nothing, when that slot is after ``deadline``
        (a monotonic time). Claiming is synchronous, so concurrent callers never share
        a slot; a caller cancelled while waiting leaves its slot unused, which only
        ever makes the spacing wider.
        """
        if self.rate is None:
            return 0.0
        now = self._clock()
        slot = max(now, self._next_free)
        if slot > deadline:
            raise BudgetExhausted(slot - now)
        self._next_free = slot + self._spacing
        return slot - now
