"""When a vendor request may go: after the vendor's last hint for it, and in a budget slot.

One pacer per vendor client. It remembers, by request (source and endpoint), the time
before which the vendor asked not to hear it again (``Retry-After``, a spent
``x-ratelimit-reset``), and holds the account's request budget, so that neither a
retry nor the next poll of the same request goes sooner than the vendor allows, and
no window of a second holds more than the budget's requests.
"""

from __future__ import annotations

import asyncio
import time

from exporter.core.errors import UpstreamError
from exporter.core.selfmetrics import UpstreamStats
from exporter.upstream.budget import BudgetExhausted, RequestBudget
from exporter.upstream.retry import MIN_ATTEMPT_SECONDS, held_for, hint_note

# Hints kept before the expired ones are swept out: one per request a target repeats.
MAX_HINTS = 1000

RequestKey = tuple[str, str]


class RequestPacer:
    """The vendor's hints by request, and the account's request budget."""

    def __init__(self, vendor: str, stats: UpstreamStats, requests_per_second: float | None) -> None:
        self.vendor = vendor
        self.stats = stats
        self.budget = RequestBudget(requests_per_second)
        # Shown from 0, so that an alert on their rate needs no ``or vector(0)``.
        stats.budget_wait_seconds.labels(vendor, stats.account)
        stats.budget_refusals.labels(vendor, stats.account)
        # Monotonic time before which a request must not be sent again, and the hint
        # (seconds, as the vendor asked) that set it, by request.
        self._not_before: dict[RequestKey, tuple[float, float]] = {}

    async def wait_turn(self, key: RequestKey, what: str, deadline: float) -> None:
        """Wait out the vendor's last hint for this request, then for a budget slot.

        Refused at once (``rate_limited``, ``budget_exhausted``) when either wait would
        leave no time for the request before ``deadline`` (a monotonic time).
        """
        now = time.monotonic()
        held = self._not_before.get(key)
        if held is not None:
            not_before, hint = held
            if not_before <= now:
                del self._not_before[key]
            elif not_before + MIN_ATTEMPT_SECONDS >= deadline:
                left = not_before - now
                note = hint_note(hint)
                raise UpstreamError(
                    "rate_limited",
                    f"{what}: {left:.1f}s more to wait{note}"
                    if note
                    else f"{what}: the vendor asked to wait {left:.1f}s more",
                    retry_after=left,
                )
            else:
                await asyncio.sleep(not_before - now)
        try:
            wait = self.budget.reserve(deadline - MIN_ATTEMPT_SECONDS)
        except BudgetExhausted as exc:
            self.stats.budget_refusals.labels(self.vendor, self.stats.account).inc()
            raise UpstreamError(
                "budget_exhausted",
                f"{what}: no request slot within the poll (next in {exc.wait:.1f}s)",
            ) from None
        if wait > 0:
            self.stats.budget_wait_seconds.labels(self.vendor, self.stats.account).inc(wait)
            await asyncio.sleep(wait)

    def take_over(self, previous: RequestPacer, *, budget: bool) -> None:
        """Go on from ``previous``, the pacer of the client this one's replaces for the
        same key at the same vendor: its hints, and its budget itself when ``budget``
        (the rate is unchanged), so that the two clients, both in use while the old one's
        polls finish, draw from one budget and the vendor sees no more than its rate."""
        self._not_before.update(previous._not_before)
        if budget:
            self.budget = previous.budget

    def remember(self, key: RequestKey, hint: float | None) -> None:
        """The vendor asked not to send this request again for ``hint`` seconds (held to
        ``retry.MAX_HINT_SECONDS``)."""
        if not hint:
            return
        now = time.monotonic()
        if len(self._not_before) > MAX_HINTS:
            self._not_before = {k: held for k, held in self._not_before.items() if held[0] > now}
        self._not_before[key] = (now + held_for(hint), hint)
