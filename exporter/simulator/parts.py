"""The simulator's parts, by vendor: each serves some of one vendor's endpoints for one
organisation, and can be scripted through its own ``/_sim/…`` endpoints.

Keyed by the vendor's name in the exporter's registry (``exporter.sources.registry``;
tests/unit/test_vendor_contract.py holds the two to each other). The simulator imports
nothing of the exporter's own, so it starts light and stays a fake of the vendors,
not of the exporter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.simulator.prom_endpoints import BasetenWithOrgMetrics, DedicatedMetricsSim
from exporter.simulator.state import SimState
from exporter.simulator.together_finetune import FineTuneSim
from exporter.simulator.together_jobs import JobsSim
from exporter.simulator.together_queue import QueueSim

# (method, path, name of the part's handler method)
Routes = list[tuple[str, str, str]]


@dataclass(frozen=True)
class Part:
    """One part: its name in an organisation, how to make it (from the shared state and
    the organisation's salt, which makes its numbers differ from another's), its routes."""

    name: str
    make: Callable[[SimState, str], Any]
    routes: Routes


PARTS: dict[str, tuple[Part, ...]] = {
    "together": (
        Part("queue", QueueSim, QueueSim.ROUTES),
        Part("jobs", lambda state, _salt: JobsSim(state), JobsSim.ROUTES),
        Part("finetune", FineTuneSim, FineTuneSim.ROUTES),
        Part("dedicated_metrics", DedicatedMetricsSim, DedicatedMetricsSim.ROUTES),
    ),
    "baseten": (Part("baseten", BasetenWithOrgMetrics, BasetenWithOrgMetrics.ROUTES),),
}
