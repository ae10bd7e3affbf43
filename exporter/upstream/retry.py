"""When and how long to retry a vendor request.

The rules of the one retry loop (``VendorClient.request_json``), in one function,
:func:`retry_wait`: exponential backoff with full jitter, and three rules besides:

- only failures that can heal by themselves are retried: timeouts, connection
  errors, 5xx and 429. A 401 or 404 will say the same thing again, so it is not
  retried (and never becomes a storm against a vendor that already said no);
- a vendor's own hint (``Retry-After``, ``x-ratelimit-reset``) is a floor on the
  wait: we never ask again sooner than we were told to;
- every attempt and every wait must fit before the poll's deadline (the poll
  interval), so retries never make a poll overrun into the next one.

The deadline travels in a context variable set by the daemon around each poll, so
every source gets the same behaviour without passing it through its own code.
"""

from __future__ import annotations

import email.utils
import functools
import math
import random
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from exporter.core.errors import UpstreamError

# Monotonic time by which the current poll must be done; None outside a poll.
POLL_DEADLINE: ContextVar[float | None] = ContextVar("poll_deadline", default=None)

RETRYABLE_REASONS = frozenset({"timeout", "connection_error", "server_error", "rate_limited"})
# Attempts at one request at most, whatever time is left.
MAX_ATTEMPTS = 4
# The shortest attempt worth starting: below this the request cannot realistically finish.
MIN_ATTEMPT_SECONDS = 0.05
# A vendor hint longer than this is held to this long (a wrong header must not silence
# a target for a day, let alone the decades a Retry-After of 999999999 asks for), and
# the failure says so (``held_for``).
MAX_HINT_SECONDS = 3600.0
# Backoff before retry n (1, 2, 3): a random wait up to FIRST_BACKOFF_SECONDS * 2 ** (n - 1),
# at most MAX_BACKOFF_SECONDS ("full jitter": retries of many targets that failed
# together spread out instead of coming back together).
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as Unix seconds; None if absent or unparseable."""
    if value is None:
        return None
    return _http_date_seconds(value.strip())


# Every answer's Date header is read, and it names whole seconds: the answers of one
# second carry the same text, parsed once.
@functools.lru_cache(maxsize=16)
def _http_date_seconds(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _room_left(remaining: str | None) -> bool:
    """Whether the vendor said its rate-limit window still has room: then its reset is
    when the window starts over, not a time to wait for (Together sends the headers
    with every answer, a 503 included)."""
    try:
        return remaining is not None and float(remaining.strip()) >= 1
    except ValueError:
        return False


def _delta_seconds(value: str) -> float | None:
    """A ``Retry-After`` in seconds; sent twice (by a proxy and the vendor, say), the
    longer of the two, as HTTP joins repeated headers with commas."""
    try:
        return max(float(part) for part in value.split(","))
    except ValueError:
        return None


def parse_retry_hint(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the vendor asks us to wait, from ``Retry-After`` or ``x-ratelimit-reset``,
    however long (what is held back is at most MAX_HINT_SECONDS: ``held_for``).

    ``Retry-After`` is delta-seconds or an HTTP date. ``x-ratelimit-reset`` is read as
    seconds until the reset, or as a Unix time when it is that large, and only when
    ``x-ratelimit-remaining`` does not say there is room left. ``now`` is wall
    time (for dates). Unparseable values are ignored.
    """
    hints: list[float] = []
    ra = headers.get("retry-after")
    if ra is not None:
        ra = ra.strip()
        seconds = _delta_seconds(ra)
        if seconds is not None:
            hints.append(seconds)
        else:
            when = parse_http_date(ra)
            if when is not None:
                hints.append(when - now)
    reset = headers.get("x-ratelimit-reset")
    if reset is not None and not _room_left(headers.get("x-ratelimit-remaining")):
        try:
            value = float(reset.strip().rstrip("s"))
        except ValueError:
            value = None
        if value is not None:
            hints.append(value - now if value > 1e9 else value)
    good = [h for h in hints if h == h]
    if not good:
        return None
    return max(max(good), 0.0)


def held_for(hint: float) -> float:
    """How long a vendor's hint holds a request back: as long as it asks, up to MAX_HINT_SECONDS."""
    return min(hint, MAX_HINT_SECONDS)


def hint_note(hint: float | None) -> str:
    """What a failure's detail adds about a hint longer than the exporter holds back for
    (empty for any other): the vendor's ask, and what is done instead."""
    if hint is None or hint <= MAX_HINT_SECONDS:
        return ""
    asked = f"{hint:.0f}s" if math.isfinite(hint) else "without end"
    return f" (it asked to wait {asked}: held back {MAX_HINT_SECONDS:.0f}s, the longest the exporter waits on a hint)"


def is_retryable(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", None)
    return isinstance(reason, str) and reason in RETRYABLE_REASONS


def retry_wait(exc: UpstreamError, attempt: int, deadline: float) -> float | None:
    """How long to wait before retrying a request whose ``attempt``-th try failed with
    ``exc``; None when it must not be retried.

    Not retried: a failure that will not heal, the last of ``MAX_ATTEMPTS``, or one
    whose wait (never shorter than the vendor's hint) leaves no time for another
    attempt before ``deadline`` (a monotonic time).
    """
    if not is_retryable(exc) or attempt >= MAX_ATTEMPTS:
        return None
    wait = random.uniform(0.0, min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1)))
    if exc.retry_after is not None:
        wait = max(wait, exc.retry_after)
    if time.monotonic() + wait + MIN_ATTEMPT_SECONDS >= deadline:
        return None
    return wait
