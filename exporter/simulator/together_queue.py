"""Together ``GET /v1/queue/metrics``: per-model queue depths that move over time.

Unscripted, depths follow the default scenario (``scenario.queue_depths``): one
model's backlog builds past the queue-depth alert's threshold and drains on a cycle,
every other model moves gently around a level of its own. A scenario set through
``/_sim/queue`` overrides one model: a fixed depth, or a backlog that grows by ``rate``
jobs per second, or an error status for that model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web

from exporter.simulator import scenario
from exporter.simulator.errors import queue_error
from exporter.simulator.state import SimState


@dataclass
class QueueScenario:
    kind: str  # "fixed", "backlog" or "error"
    waiting: int = 0
    running: int = 0
    rate: float = 0.0
    since: float = 0.0
    status: int = 500


class QueueSim:
    """One organisation's queues; ``salt`` (its name, empty for the default one) makes
    its depths differ from another's for the same model."""

    ROUTES: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", "/v1/queue/metrics", "metrics"),
        ("POST", "/_sim/queue", "set_scenario"),
    ]

    def __init__(self, state: SimState, salt: str = "") -> None:
        self.state = state
        self.salt = salt
        self.scenarios: dict[str, QueueScenario] = {}

    def depths(self, model: str) -> tuple[int, int]:
        now = self.state.clock()
        sc = self.scenarios.get(model)
        if sc is not None:
            if sc.kind == "backlog":
                return sc.waiting + int(sc.rate * (now - sc.since)), sc.running
            return sc.waiting, sc.running
        # Salted, another organisation's same model tells no story of its own: calm values.
        return scenario.queue_depths(self.salt + model, self.state.story.at(now))

    async def metrics(self, request: web.Request) -> web.Response:
        model = request.query.get("model", "")
        if not model:
            return queue_error(
                400, "missing_parameter", "model is required", type_="invalid_request_error", param="model"
            )
        sc = self.scenarios.get(model)
        if sc is not None and sc.kind == "error":
            return queue_error(sc.status, "simulated_error", "simulated failure", type_="server_error")
        waiting, running = self.depths(model)
        return web.json_response(
            {"messages_running": running, "messages_waiting": waiting, "total_jobs": running + waiting}
        )

    async def set_scenario(self, request: web.Request) -> web.Response:
        """``POST /_sim/queue`` {model, kind: fixed|backlog|error|clear, waiting, running, rate, status}."""
        doc = await request.json()
        model = str(doc["model"])
        kind = str(doc.get("kind", "fixed"))
        if kind == "clear":
            self.scenarios.pop(model, None)
        elif kind in ("fixed", "backlog", "error"):
            self.scenarios[model] = QueueScenario(
                kind=kind,
                waiting=int(doc.get("waiting", 0)),
                running=int(doc.get("running", 0)),
                rate=float(doc.get("rate", 0.0)),
                since=self.state.clock(),
                status=int(doc.get("status", 500)),
            )
        else:
            return web.json_response({"error": f"unknown kind {kind!r}"}, status=400)
        return web.json_response({"ok": True})
