"""The outcome of the last config load or reload, as the landing page shows it."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.core.logs import SCRUBBER


@dataclass(frozen=True)
class ReloadState:
    """What became of the last attempt to load the config file.

    ``message`` is the answer the reload endpoint gave, in general terms. ``problems``
    are what a failed load found, each with its file, line and key (as ``check-config``
    prints them, scrubbed of API keys, at most ``MAX_PROBLEMS`` of ``MAX_PROBLEM_CHARS``
    each), so that whoever opens the landing page need not search the log for them.
    """

    ok: bool
    # When the last load or reload was attempted; 0 before the first.
    attempted_at: float = 0.0
    # When the running config was loaded; 0 before the first load.
    loaded_at: float = 0.0
    # False while only the load at start has happened.
    reloaded: bool = False
    message: str = ""
    problems: tuple[str, ...] = ()
    # How many problems there were (more than ``problems`` holds when capped).
    problem_count: int = 0


# A file gone wrong can have a problem per line; the page shows the first ones.
MAX_PROBLEMS = 20
MAX_PROBLEM_CHARS = 500


def shown_problems(problems: list[str]) -> tuple[str, ...]:
    """The first ``MAX_PROBLEMS`` problems, scrubbed of API keys and each cut to
    ``MAX_PROBLEM_CHARS``: a page is no place for a whole pasted file."""
    out = []
    for p in problems[:MAX_PROBLEMS]:
        text = SCRUBBER.scrub(p)
        out.append(text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 1] + "…")
    return tuple(out)
