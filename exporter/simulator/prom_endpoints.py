"""The vendors' own Prometheus endpoints: Baseten's organisation ``GET /metrics``
(``Authorization: Api-Key``), a route of the Baseten workspace (``BasetenWithOrgMetrics``),
and a generic one shaped like Together's dedicated-endpoint metrics,
``GET /v1/dedicated-endpoints/metrics`` (``Bearer``), a part of the Together organisation
(``DedicatedMetricsSim``).

Each answers at most ``limit`` requests (6) in any ``window`` (60 s) per organisation,
and 429 with ``Retry-After`` (whole seconds until a slot frees) beyond, as the vendors
do. Values move every ``REFRESH`` seconds (the vendors refresh every 30 s).

Baseten's body agrees with the management API the simulator serves for the same
deployments: ``baseten_inference_requests_total`` is the running total of the requests
whose per-step totals ``.../deployments/{id}/metrics`` reports, one status code per
status class (``increase`` over a step equals that step's total exactly); the latency
histograms have as many observations, spread log-normally around the deployment's
median (their quantiles are near, not equal to, the management API's, which follow the
load). ``POST /_sim/baseten/org-metrics`` and ``POST /_sim/dedicated-endpoints``
``{"limit": n, "window": seconds}`` change an organisation's limit (``?org=``).
"""

from __future__ import annotations

import collections
import math
import time
import zlib
from collections.abc import Callable, Iterator
from typing import ClassVar

from aiohttp import web

from exporter.simulator import baseten_data as data
from exporter.simulator.baseten import BasetenSim
from exporter.simulator.state import SimState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REFRESH = 30.0
LIMIT = 6
WINDOW = 60.0
# One status code per status class of the management API.
STATUS_CODES = {"2xx": "200", "4xx": "429", "5xx": "500"}
BUCKETS = ("0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf")
# Spread of the latency distribution: its p90 is 1.8 times its median, as in the
# management API's quantiles (baseten_data._Q_FACTOR).
SIGMA = math.log(1.8) / 1.2816
HISTOGRAMS = {
    "baseten_end_to_end_response_time_seconds": (0.8, "End-to-end response time of inference requests."),
    "baseten_time_to_first_byte_seconds": (0.12, "Time to the first byte of the response."),
}
# Together-shaped dedicated endpoints of every organisation: (endpoint, deployment, requests/s).
DEDICATED = (
    ("acme/llama-3-70b-dedicated", "dep-7f3a", 4.0),
    ("acme/mixtral-8x7b-dedicated", "dep-91c2", 1.5),
)
TOGETHER_STATUS_SHARE = {"2xx": 0.97, "4xx": 0.025, "5xx": 0.005}
QUANTILES = {"0.5": 0.4, "0.9": 0.9, "0.99": 2.1}


class RateLimit:
    """At most ``limit`` admitted requests in any ``window`` seconds."""

    def __init__(
        self, limit: int = LIMIT, window: float = WINDOW, clock: Callable[[], float] = time.monotonic
    ):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._admitted: collections.deque[float] = collections.deque()

    def admit(self) -> float | None:
        """None if the request may be answered (it is counted), else seconds to wait."""
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()
        if len(self._admitted) >= self.limit:
            return self._admitted[0] + self.window - now
        self._admitted.append(now)
        return None


def _too_many(wait: float) -> web.Response:
    return web.json_response(
        {"code": "RATE_LIMITED", "message": "Too many requests to the metrics endpoint"},
        status=429,
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


def _scheme_refused(scheme: str) -> web.Response:
    return web.json_response(
        {"code": "UNAUTHENTICATED", "message": f"This endpoint takes Authorization: {scheme} <key>"},
        status=401,
    )


def _text(lines: Iterator[str]) -> web.Response:
    resp = web.Response(body="".join(lines).encode(), headers={"Content-Type": CONTENT_TYPE})
    resp.enable_compression()
    return resp


def _refreshed(state: SimState) -> float:
    """The simulator's time as of the vendor's last refresh."""
    return math.floor(state.clock() / REFRESH) * REFRESH


async def _set_limit(request: web.Request, limit: RateLimit) -> web.Response:
    doc = await request.json()
    if "limit" in doc:
        limit.limit = int(doc["limit"])
    if "window" in doc:
        limit.window = float(doc["window"])
    return web.json_response({"ok": True})


def _cdf(x: float, median: float) -> float:
    return 0.5 * math.erfc(-math.log(x / median) / (SIGMA * math.sqrt(2)))


class BasetenWithOrgMetrics(BasetenSim):
    """A Baseten workspace that also serves its organisation's metrics endpoint, for its
    deployments as they are at each request."""

    ROUTES: ClassVar[list[tuple[str, str, str]]] = [
        *BasetenSim.ROUTES,
        ("GET", "/metrics", "org_metrics"),
        ("POST", "/_sim/baseten/org-metrics", "org_metrics_control"),
    ]

    def __init__(self, state: SimState, salt: str = "") -> None:
        super().__init__(state, salt)
        self.org_limit = RateLimit()

    async def org_metrics(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").lower().startswith("api-key "):
            return _scheme_refused("Api-Key")
        wait = self.org_limit.admit()
        if wait is not None:
            return _too_many(wait)
        return _text(self.org_lines(_refreshed(self.state)))

    async def org_metrics_control(self, request: web.Request) -> web.Response:
        return await _set_limit(request, self.org_limit)

    def org_lines(self, t: float) -> Iterator[str]:
        """The organisation endpoint's body at ``t``, family by family."""
        deps = [(m, d) for m in self.models.values() for d in m.deployments.values()]

        def ids(model: data.SimModel, dep: data.SimDeployment) -> str:
            name = model.name.replace("\\", "\\\\").replace('"', '\\"')
            return f'model_id="{model.id}",model_name="{name}",deployment_id="{dep.id}"'

        def env(dep: data.SimDeployment) -> str:
            return f'environment="{dep.environment or ""}"'

        def requests(dep: data.SimDeployment, status: str) -> int:
            total = data.cumulative(dep, "baseten_inference_requests_total", {"status": status}, t)
            return max(0, math.floor(total))

        def request_labels(model: data.SimModel, dep: data.SimDeployment, code: str) -> str:
            phase = "stable" if dep.is_production else ""
            return (
                f'{ids(model, dep)},status_code="{code}",is_async="false",{env(dep)},rollout_phase="{phase}"'
            )

        name = "baseten_inference_requests_total"
        yield f"# HELP {name} Inference requests, by status code.\n# TYPE {name} counter\n"
        for model, dep in deps:
            for status, code in STATUS_CODES.items():
                yield f"{name}{{{request_labels(model, dep, code)}}} {requests(dep, status)}\n"
        for name, (base, help_text) in HISTOGRAMS.items():
            yield f"# HELP {name} {help_text}\n# TYPE {name} histogram\n"
            for model, dep in deps:
                median = base * (1 + 0.2 * math.sin(zlib_seed(dep.seed_key) % 7))
                for status, code in STATUS_CODES.items():
                    labels = request_labels(model, dep, code)
                    count = requests(dep, status)
                    for le in BUCKETS:
                        n = count if le == "+Inf" else math.floor(count * _cdf(float(le), median))
                        yield f'{name}_bucket{{{labels},le="{le}"}} {n}\n'
                    total = round(count * median * math.exp(SIGMA**2 / 2), 3)
                    yield f"{name}_sum{{{labels}}} {total}\n{name}_count{{{labels}}} {count}\n"
        gauges = (
            ("baseten_replicas_active", "gauge", "Active replicas."),
            ("baseten_replicas_starting", "gauge", "Replicas starting."),
            ("baseten_container_cpu_usage_seconds_total", "counter", "CPU time used by the containers."),
            (
                "baseten_container_cpu_memory_working_set_bytes",
                "gauge",
                "Memory working set of the containers.",
            ),
            ("baseten_gpu_utilization", "gauge", "GPU utilization, 0 to 1."),
        )
        for name, mtype, help_text in gauges:
            yield f"# HELP {name} {help_text}\n# TYPE {name} {mtype}\n"
            for model, dep in deps:
                if mtype == "counter":
                    value = round(data.cumulative(dep, name, {}, t), 3)
                else:
                    value = data.gauge(dep, name, t)
                    if name == "baseten_gpu_utilization" and dep.gpu_percent:
                        value = round(value / 100, 3)
                yield f"{name}{{{ids(model, dep)},{env(dep)}}} {_number(value)}\n"


class DedicatedMetricsSim:
    """One organisation's dedicated-endpoint metrics, as a generic relay reads them."""

    ROUTES: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", "/v1/dedicated-endpoints/metrics", "metrics"),
        ("POST", "/_sim/dedicated-endpoints", "control"),
    ]

    def __init__(self, state: SimState, salt: str = "") -> None:
        self.state = state
        self.salt = salt
        self.limit = RateLimit()

    async def metrics(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").lower().startswith("bearer "):
            return _scheme_refused("Bearer")
        wait = self.limit.admit()
        if wait is not None:
            return _too_many(wait)
        return _text(self.lines(_refreshed(self.state)))

    async def control(self, request: web.Request) -> web.Response:
        return await _set_limit(request, self.limit)

    def lines(self, t: float) -> Iterator[str]:
        """The generic endpoint's body at ``t``: requests by status, in flight, latency."""
        share = 1.0 + (zlib_seed(self.salt) % 5) / 10
        eps = [(e, f"{d}{self.salt}", rps * share) for e, d, rps in DEDICATED]
        name = "together_endpoint_requests_total"
        yield f"# HELP {name} Requests to the dedicated endpoint, by status class.\n# TYPE {name} counter\n"
        for endpoint, dep, rps in eps:
            for status, part in TOGETHER_STATUS_SHARE.items():
                yield f'{name}{{endpoint="{endpoint}",deployment="{dep}",status="{status}"}} {math.floor(rps * part * t)}\n'
        name = "together_endpoint_requests_in_flight"
        yield f"# HELP {name} Requests in flight.\n# TYPE {name} gauge\n"
        for endpoint, dep, rps in eps:
            wave = 1 + 0.3 * math.sin(t / 60)
            yield f'{name}{{endpoint="{endpoint}",deployment="{dep}"}} {round(rps * 0.6 * wave)}\n'
        name = "together_endpoint_server_latency_seconds"
        yield f"# HELP {name} Server-side latency over the last minute.\n# TYPE {name} summary\n"
        for endpoint, dep, rps in eps:
            labels = f'endpoint="{endpoint}",deployment="{dep}"'
            for q, seconds in QUANTILES.items():
                yield f'{name}{{{labels},quantile="{q}"}} {seconds}\n'
            count = math.floor(rps * t)
            yield f"{name}_sum{{{labels}}} {round(count * 0.55, 3)}\n{name}_count{{{labels}}} {count}\n"


def zlib_seed(text: str) -> int:
    """A stable number for a name (the same as the deployment data's seeds)."""
    return zlib.crc32(text.encode())


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
