"""The outcome of the last config load or reload, as the landing page shows it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReloadState:
    """What became of the last attempt to load the config file.

    ``message`` is the answer the reload endpoint gave, in the general terms fit for
    anyone who can open the page (the problems, with their lines, are in the log).
    """

    ok: bool
    # When the last load or reload was attempted; 0 before the first.
    attempted_at: float = 0.0
    # When the running config was loaded; 0 before the first load.
    loaded_at: float = 0.0
    # False while only the load at start has happened.
    reloaded: bool = False
    message: str = ""
