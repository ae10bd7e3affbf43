"""The landing page at ``/``: what is running, how it is doing, and where to look next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from exporter.engine.reloadstate import ReloadState
from exporter.web.pages import render_page
from exporter.web.pages.targets import STATES


@dataclass(frozen=True)
class Overview:
    """Everything the landing page shows, read from the running exporter."""

    version: str
    started_at: float
    config_path: str
    reload: ReloadState
    # Targets by health (up, down, unknown).
    health: Mapping[str, int]
    telemetry_path: str = "/metrics"
    # Whether POST /-/reload is answered (--web.enable-lifecycle).
    lifecycle: bool = False


def render(overview: Overview, now: float) -> str:
    counts = {s: overview.health.get(s, 0) for s in STATES}
    return render_page(
        "landing.html",
        page="home",
        title="Home",
        telemetry_path=overview.telemetry_path,
        now=now,
        uptime=float(max(0, int(now - overview.started_at))),
        o=overview,
        counts=counts,
        total=sum(counts.values()),
        states=STATES,
    )
