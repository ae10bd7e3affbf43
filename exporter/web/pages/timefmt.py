"""Times and durations as a person reads them on a page: "12 s ago", "3 h 5 min", "500 ms".

Pure: the current time is passed in. Two units at most, since "1 h 5 min" is what one
wants at a glance; the exact time is in the ISO-8601 form next to it.
"""

from __future__ import annotations

import math
import time

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def iso(ts: float) -> str:
    """Unix time as ISO-8601 UTC to the second; empty for 0 (never)."""
    if ts <= 0:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def span(seconds: float) -> str:
    """A length of time in its two largest units, rounded down: ``3 h 5 min``, ``12 s``.

    Under a second, milliseconds (``500 ms``); a fractional number of seconds under a
    minute keeps its fraction (``2.5 s``), as poll intervals and timeouts can have one.
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds == 0:
        return "0 s"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.3g} s"
    rest = int(seconds)
    parts: list[str] = []
    for name, size in _UNITS:
        count, rest = divmod(rest, size)
        if count or parts:
            parts.append(f"{count} {name}")
        if len(parts) == 2:
            break
    # "1 h 0 min" says no more than "1 h".
    return " ".join(p for p in parts if not p.startswith("0 ")) or "0 s"


def ago(ts: float, now: float) -> str:
    """How long before ``now`` ``ts`` was: ``12 s ago``; ``never`` for 0.

    Within a second (or ahead of ``now``, after a clock step) it is ``just now``.
    """
    if ts <= 0:
        return "never"
    elapsed = now - ts
    if elapsed < 1:
        return "just now"
    return f"{span(float(int(elapsed)))} ago"


def duration(seconds: float) -> str:
    """A poll's wall time: milliseconds under a second (``2.3 ms``), else seconds (``1.25 s``)."""
    if seconds < 0.001:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"
