"""Together's rate-limit headers, as the simulator answers them.

Together sends ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and ``x-ratelimit-reset``
with its answers. The simulator counts each organisation's Together requests in
one-minute windows of its own clock and reports the window's limit, what is left and
the seconds until it starts over. It reports and does not refuse: 429s come from the
fault injection (``/_sim/faults``), where a test asks for them.
"""

from __future__ import annotations

import math

TOGETHER_PATHS = ("/v1/queue", "/v1/fine-tunes")
WINDOW_SECONDS = 60.0
REQUESTS_PER_WINDOW = 600


class TogetherRateLimits:
    """Requests per organisation in the current window, and the headers that say so."""

    def __init__(self, limit: int = REQUESTS_PER_WINDOW, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._used: dict[str, tuple[float, int]] = {}

    def headers(self, org: str, now: float) -> dict[str, str]:
        """Count one request of ``org`` at ``now`` and return the headers of its answer."""
        start = math.floor(now / self.window) * self.window
        window_start, used = self._used.get(org, (start, 0))
        if window_start != start:
            used = 0
        used += 1
        self._used[org] = (start, used)
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(self.limit - used, 0)),
            "x-ratelimit-reset": str(max(math.ceil(start + self.window - now), 1)),
        }
