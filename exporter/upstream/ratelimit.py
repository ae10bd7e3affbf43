"""A vendor's rate-limit headers, as the latest reading per account and endpoint.

Together answers with ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and
``x-ratelimit-reset``: how many requests the current window allows, how many are left,
and when it starts over. Exported as they were last seen, they show how close the
exporter runs to the vendor's limit before a 429 says so. A header that is absent or
not a number is left out of the reading; an answer with none of the three gives no
reading, so a vendor that never sends them has no series rather than made-up zeros.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

# ``x-ratelimit-reset`` is seconds until the reset, or a Unix time when it is this
# large (the same reading as the retry hint's, see ``exporter.upstream.retry``).
UNIX_TIME_FROM = 1e9


class RateLimitReading(NamedTuple):
    """What one answer said of the vendor's rate limit; None where it said nothing."""

    limit: float | None
    remaining: float | None
    reset_timestamp: float | None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip().rstrip("s"))
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def read_rate_limit(headers: Mapping[str, str], now: float) -> RateLimitReading | None:
    """The reading in an answer's ``headers`` (case-insensitive mapping), at wall time ``now``."""
    limit = _number(headers.get("x-ratelimit-limit"))
    remaining = _number(headers.get("x-ratelimit-remaining"))
    reset = _number(headers.get("x-ratelimit-reset"))
    if limit is None and remaining is None and reset is None:
        return None
    if reset is not None and reset < UNIX_TIME_FROM:
        reset = now + reset
    return RateLimitReading(limit, remaining, reset)
