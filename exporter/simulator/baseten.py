"""Baseten ``GET /v1/models``, ``.../deployments`` and ``.../deployments/{id}/metrics``.

Speaks the documented contract: the three modes, index-mapped descriptors and value
sets, ``null`` for lagging histogram steps (and 0 for lagging counter steps, as the
real API does during its ingestion lag), 400 for unknown metric names, windows over
7 days, or a start/end with CURRENT. ``/_sim/baseten/...`` changes the account and
the timing (step floor, lag) for tests and the demo; ``{"catalog": [...]}`` replaces
the whole account, so that a benchmark can host thousands of deployments.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from aiohttp import web

from exporter.simulator import baseten_data as data
from exporter.simulator.state import SimState

MAX_WINDOW_MS = 7 * 86400 * 1000
# The step is the window divided into at most this many points, no finer than min_step.
MAX_POINTS = 60


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"code": "INVALID_ARGUMENT" if status == 400 else "NOT_FOUND", "message": message}, status=status
    )


class BasetenSim:
    """One workspace: its models and deployments; ``salt`` (its name, empty for the
    default one) makes its values differ from another's for the same ids."""

    ROUTES: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", "/v1/models", "list_models"),
        ("GET", "/v1/models/{model_id}/deployments", "list_deployments"),
        ("GET", "/v1/models/{model_id}/deployments/{deployment_id}/metrics", "metrics"),
        ("POST", "/_sim/baseten", "control"),
    ]

    def __init__(self, state: SimState, salt: str = "") -> None:
        self.state = state
        self.salt = salt
        self.models = data.default_catalog(salt, state.story)
        self.min_step = 60
        self.lag = 90.0

    def step_for(self, window_ms: int) -> int:
        """Seconds per step for a window: whole seconds, at most MAX_POINTS steps."""
        return max(self.min_step, math.ceil(window_ms / 1000 / MAX_POINTS))

    async def list_models(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        models = [m.doc() for m in self.models.values() if name is None or m.name == name]
        return web.json_response({"models": models})

    async def list_deployments(self, request: web.Request) -> web.Response:
        model = self.models.get(request.match_info["model_id"])
        if model is None:
            return _error(404, "Model not found")
        name = request.query.get("name")
        now = self.state.clock()
        deps = [d.doc(now) for d in model.deployments.values() if name is None or d.name == name]
        return web.json_response({"deployments": deps})

    def _values(
        self,
        model: data.SimModel,
        dep: data.SimDeployment,
        defs: list[data.MetricDef],
        a: float,
        b: float,
        gauges_at: float | None = None,
    ) -> list[list[float | None]]:
        """One value set for the step [a, b) (seconds), read at the simulator's clock;
        gauges at ``gauges_at`` (default: the step's end)."""
        settled = b <= self.state.clock() - self.lag
        out: list[list[float | None]] = []
        for m in defs:
            row: list[float | None] = []
            for labels in m.label_sets:
                if m.kind == "COUNTER":
                    row.append(data.step_total(dep, m.name, labels, a, b) if settled else 0.0)
                elif m.kind == "HISTOGRAM":
                    row.append(data.histogram(dep, m.name, labels, a, b) if settled else None)
                else:
                    row.append(data.gauge(dep, m.name, b if gauges_at is None else gauges_at))
            out.append(row)
        return out

    async def metrics(self, request: web.Request) -> web.Response:
        model = self.models.get(request.match_info["model_id"])
        dep = model.deployments.get(request.match_info["deployment_id"]) if model else None
        if model is None or dep is None:
            return _error(404, "Deployment not found")
        q = request.query
        mode = q.get("mode", "CURRENT")
        if mode not in ("CURRENT", "SUMMARY", "SERIES"):
            return _error(400, f"Invalid mode {mode!r}")
        names = [n for raw in q.getall("metrics", []) for n in raw.split(",") if n]
        unknown = [n for n in names if n not in data.METRICS]
        if unknown:
            return _error(400, f"Unknown metric name(s): {', '.join(unknown)}")
        try:
            start_q = int(q["start_epoch_millis"]) if "start_epoch_millis" in q else None
            end_q = int(q["end_epoch_millis"]) if "end_epoch_millis" in q else None
        except ValueError:
            return _error(400, "start_epoch_millis and end_epoch_millis must be integers")
        now_ms = int(self.state.clock() * 1000)
        if mode == "CURRENT" and (start_q is not None or end_q is not None):
            return _error(400, "start_epoch_millis and end_epoch_millis must be omitted in CURRENT mode")
        end = end_q if end_q is not None else now_ms
        start = start_q if start_q is not None else end - 3600 * 1000
        if end <= start:
            return _error(400, "end_epoch_millis must be after start_epoch_millis")
        if end - start > MAX_WINDOW_MS:
            return _error(400, "The window between start and end must not exceed 7 days")
        # Valid names that do not apply to this deployment are left out.
        defs = [
            data.METRICS[n]
            for n in (names or data.DEFAULT_METRICS)
            if model.llm or not data.METRICS[n].llm_only
        ]
        defs = list({d.name: d for d in defs}.values())
        step: int | None = None
        value_sets: list[dict[str, Any]] = []
        if mode == "CURRENT":
            start = end = now_ms
            # A snapshot: gauges at now, the rest over the latest minute already ingested.
            t = now_ms / 1000 - self.lag
            value_sets.append(
                {
                    "start_epoch_millis": now_ms,
                    "values": self._values(model, dep, defs, t - 60, t, now_ms / 1000),
                }
            )
        elif mode == "SUMMARY":
            value_sets.append(
                {
                    "start_epoch_millis": start,
                    "values": self._values(model, dep, defs, start / 1000, end / 1000),
                }
            )
        else:
            step = self.step_for(end - start)
            t = start
            while t < end:
                b = min(t + step * 1000, end)
                value_sets.append(
                    {"start_epoch_millis": t, "values": self._values(model, dep, defs, t / 1000, b / 1000)}
                )
                t += step * 1000
        return web.json_response(
            {
                "start_epoch_millis": start,
                "end_epoch_millis": end,
                "mode": mode,
                "step_seconds": step,
                "metric_descriptors": [
                    {"name": d.name, "unit_hint": d.unit_hint, "kind": d.kind, "label_sets": d.label_sets}
                    for d in defs
                ],
                "metric_values": value_sets,
            }
        )

    async def control(self, request: web.Request) -> web.Response:
        """``POST /_sim/baseten`` {min_step, lag}, {catalog: [model, …]} (see
        ``baseten_data.catalog_from``) and/or {model_id, deployment_id, status, rps, gpu_percent}
        (a deployment given a status or rps holds it, off the default scenario's load curve)."""
        doc = await request.json()
        if "catalog" in doc:
            try:
                self.models = data.catalog_from(doc["catalog"], self.salt)
            except (KeyError, TypeError, ValueError) as exc:
                return web.json_response({"error": f"bad catalog: {exc}"}, status=400)
        if "min_step" in doc:
            self.min_step = max(1, int(doc["min_step"]))
        if "lag" in doc:
            self.lag = float(doc["lag"])
        if "deployment_id" in doc:
            model = self.models.get(str(doc.get("model_id")))
            dep = model.deployments.get(str(doc["deployment_id"])) if model else None
            if dep is None:
                return web.json_response({"error": "no such deployment"}, status=404)
            if "status" in doc or "rps" in doc:
                dep.story = None
            if "status" in doc:
                dep.status = str(doc["status"])
            if "rps" in doc:
                dep.rps = None if doc["rps"] is None else float(doc["rps"])
            if "gpu_percent" in doc:
                dep.gpu_percent = bool(doc["gpu_percent"])
        return web.json_response({"ok": True})
