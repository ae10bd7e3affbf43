"""The simulated Baseten account: models, deployments and the metrics they report.

Every value is a deterministic function of the deployment and time, so a step reads
the same on every request once its ingestion lag has passed, whatever window it is
read through. Counters come from a monotone cumulative curve ``C(t)``: a step's
total is ``floor(C(end)) - floor(C(start))``, so totals over any partition of a
stretch of time add up to the same number, as real per-step totals do.

In the default workspace's catalog one deployment (``scenario.SCALING_DEPLOYMENT``)
follows the default scenario: its status, replicas, traffic and latency move with a
load curve that scales it up, down, to zero and back (``scenario.deployment_at``); the
others, and every deployment of another workspace, hold steady. Scripting a
deployment's status or traffic takes it off that curve.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from exporter.simulator import scenario

QUANTILES = ("0.5", "0.9", "0.95", "0.99")
HISTOGRAM_SETS: list[dict[str, str]] = [{"quantile": q} for q in QUANTILES] + [{"stat": "avg"}]
STATUS_SETS: list[dict[str, str]] = [{"status": s} for s in ("2xx", "4xx", "5xx")]
# Share of requests per status class: a healthy deployment, whose 5xx spend a tenth of
# the error budget of a 99% availability objective.
STATUS_SHARE = {"2xx": 0.959, "4xx": 0.04, "5xx": 0.001}
DEFAULT_METRICS = (
    "baseten_replicas_active",
    "baseten_inference_requests_total",
    "baseten_end_to_end_response_time_seconds",
)


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: str
    unit_hint: str
    label_sets: list[dict[str, str]]
    llm_only: bool = False


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in [
        MetricDef("baseten_replicas_active", "GAUGE", "COUNT", [{}]),
        MetricDef("baseten_replicas_starting", "GAUGE", "COUNT", [{}]),
        MetricDef("baseten_concurrent_requests", "GAUGE", "COUNT", [{}]),
        MetricDef("baseten_async_queue_size", "GAUGE", "COUNT", [{}]),
        MetricDef("baseten_inference_requests_total", "COUNTER", "COUNT", STATUS_SETS),
        MetricDef("baseten_end_to_end_response_time_seconds", "HISTOGRAM", "SECONDS", HISTOGRAM_SETS),
        MetricDef("baseten_time_to_first_byte_seconds", "HISTOGRAM", "SECONDS", HISTOGRAM_SETS),
        MetricDef("baseten_time_in_async_queue_seconds", "HISTOGRAM", "SECONDS", HISTOGRAM_SETS),
        MetricDef("baseten_gpu_memory_used", "GAUGE", "MEBIBYTES", [{}]),
        MetricDef("baseten_gpu_utilization", "GAUGE", "RATIO", [{}]),
        MetricDef("baseten_container_cpu_usage_seconds_total", "COUNTER", "SECONDS", [{}]),
        MetricDef("baseten_container_cpu_memory_working_set_bytes", "GAUGE", "BYTES", [{}]),
        MetricDef("baseten_request_size_bytes", "HISTOGRAM", "BYTES", HISTOGRAM_SETS),
        MetricDef("baseten_response_size_bytes", "HISTOGRAM", "BYTES", HISTOGRAM_SETS),
        MetricDef("baseten_llm_input_tokens_total", "COUNTER", "COUNT", [{}], llm_only=True),
        MetricDef("baseten_llm_output_tokens_total", "COUNTER", "COUNT", [{}], llm_only=True),
        MetricDef("baseten_llm_kv_cache_hit_rate", "GAUGE", "RATIO", [{}], llm_only=True),
    ]
}


@dataclass
class SimDeployment:
    id: str
    name: str
    model_id: str
    status: str = "ACTIVE"
    is_production: bool = False
    is_development: bool = False
    environment: str | None = None
    replicas: int = 1
    # Requests per second; None follows a slow wave around a per-deployment base.
    rps: float | None = None
    # Report GPU utilisation as 0-100 under unit_hint RATIO (a quirk users have seen).
    gpu_percent: bool = False
    # The workspace's name (empty for the default one): the same ids in two workspaces
    # report different values.
    salt: str = ""
    # Set: status, replicas and traffic follow the default scenario's scaling story
    # on this clock (its time zero is the simulator's start).
    story: scenario.StoryClock | None = None

    @property
    def seed_key(self) -> str:
        return self.salt + self.id

    def moment(self, t: float) -> scenario.DeploymentMoment:
        """Status, replicas and traffic at ``t``: the scenario's, or the fixed ones."""
        if self.story is not None:
            return scenario.deployment_at(self.story.at(t))
        active = self.replicas if self.status in ("ACTIVE", "UNHEALTHY", "UPDATING") else 0
        rps = 0.0 if active == 0 else self.rps if self.rps is not None else 2.0 + _seed(self.seed_key) % 5
        starting = 1 if self.status == "WAKING_UP" else 0
        return scenario.DeploymentMoment(self.status, active, starting, rps, queued=0, latency_factor=1.0)

    def doc(self, now: float) -> dict[str, Any]:
        moment = self.moment(now)
        return {
            "id": self.id,
            "created_at": "2026-01-05T10:00:00Z",
            "name": self.name,
            "model_id": self.model_id,
            "is_production": self.is_production,
            "is_development": self.is_development,
            "status": moment.status,
            "active_replica_count": moment.active,
            "autoscaling_settings": {
                "min_replica": 0,
                "max_replica": 4,
                "autoscaling_window": 60,
                "scale_down_delay": 900,
                "concurrency_target": 8,
                "target_utilization_percentage": 70,
            },
            "instance_type_name": "H100:1x24x256",
            "environment": self.environment,
            "labels": None,
            "region": None,
            "request_backpressure_settings": {"policy": None},
        }


@dataclass
class SimModel:
    id: str
    name: str
    llm: bool
    deployments: dict[str, SimDeployment] = field(default_factory=dict)

    def doc(self) -> dict[str, Any]:
        prod = next((d.id for d in self.deployments.values() if d.is_production), None)
        dev = next((d.id for d in self.deployments.values() if d.is_development), None)
        return {
            "id": self.id,
            "created_at": "2026-01-05T09:00:00Z",
            "name": self.name,
            "deployments_count": len(self.deployments),
            "production_deployment_id": prod,
            "development_deployment_id": dev,
            "instance_type_name": "H100:1x24x256",
            "team_name": "demo-team",
        }


def default_catalog(salt: str = "", story: scenario.StoryClock | None = None) -> dict[str, SimModel]:
    """An account's deployments (``salt``: the workspace, empty for the default one);
    in the default workspace, the scaling deployment plays the story on ``story``."""
    llm = SimModel("m1llama", "llama-chat", llm=True)
    llm.deployments = {
        d.id: d
        for d in [
            SimDeployment("d1prod", "v3", "m1llama", "ACTIVE", True, False, "production", replicas=2),
            SimDeployment("d1stage", "v4-rc", "m1llama", "ACTIVE", False, False, "staging", gpu_percent=True),
            SimDeployment("d1dev", "dev", "m1llama", "SCALED_TO_ZERO", False, True, None),
            SimDeployment("d1old", "v2", "m1llama", "INACTIVE", False, False, None),
        ]
    }
    whisper = SimModel("m2whisper", "whisper-large", llm=False)
    whisper.deployments = {
        d.id: d for d in [SimDeployment("d2prod", "v1", "m2whisper", "ACTIVE", True, False, "production")]
    }
    for model in (llm, whisper):
        for dep in model.deployments.values():
            dep.salt = salt
    models = {m.id: m for m in (llm, whisper)}
    if not salt:
        model_id, dep_id = scenario.SCALING_DEPLOYMENT
        models[model_id].deployments[dep_id].story = story or scenario.StoryClock(0.0)
    return models


def catalog_from(specs: list[dict[str, Any]], salt: str = "") -> dict[str, SimModel]:
    """An account from plain specs: ``{"id", "name", "llm": false, "deployments": [{"id",
    "name", "status": "ACTIVE", "environment": null, "is_production": false,
    "is_development": false, "replicas": 1}, …]}`` per model."""
    models: dict[str, SimModel] = {}
    for spec in specs:
        model = SimModel(str(spec["id"]), str(spec.get("name", spec["id"])), llm=bool(spec.get("llm", False)))
        for d in spec.get("deployments", []):
            env = d.get("environment")
            dep = SimDeployment(
                id=str(d["id"]),
                name=str(d.get("name", d["id"])),
                model_id=model.id,
                status=str(d.get("status", "ACTIVE")),
                is_production=bool(d.get("is_production", False)),
                is_development=bool(d.get("is_development", False)),
                environment=None if env is None else str(env),
                replicas=int(d.get("replicas", 1)),
                salt=salt,
            )
            model.deployments[dep.id] = dep
        models[model.id] = model
    return models


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


def rate(dep: SimDeployment, t: float) -> float:
    """Requests per second of a deployment at ``t`` (0 when it has no replicas)."""
    return dep.moment(t).rps


# Per request of a counter series: its share of requests, or tokens per request.
_PER_REQUEST = {
    "baseten_llm_input_tokens_total": 420.0,
    "baseten_llm_output_tokens_total": 180.0,
}
CPU_PER_REPLICA = 0.8  # CPU-seconds per second


def cumulative(dep: SimDeployment, metric: str, labels: dict[str, str], t: float) -> float:
    """Monotone running total of a counter series at time ``t`` (seconds)."""
    if metric == "baseten_inference_requests_total":
        per = STATUS_SHARE.get(labels.get("status", ""), 0.0)
    else:
        per = _PER_REQUEST.get(metric, 1.0)
    if dep.story is not None:
        # Per second of the clock as per second of the story, however fast it plays.
        t0, speed = dep.story.at(t), dep.story.speed
        if metric == "baseten_container_cpu_usage_seconds_total":
            return CPU_PER_REPLICA * scenario.replica_seconds_until(t0) / speed
        return per * scenario.requests_until(t0) / speed
    if metric == "baseten_container_cpu_usage_seconds_total":
        r = CPU_PER_REPLICA * dep.moment(t).active
    else:
        r = rate(dep, t) * per
    if dep.rps is not None or r == 0:
        return r * t
    # The wave's derivative is r * (1 + 0.3 cos), never negative: C only goes up.
    period = 600.0
    return r * t + 0.3 * r * period / (2 * math.pi) * math.sin(2 * math.pi * t / period)


def step_total(dep: SimDeployment, metric: str, labels: dict[str, str], a: float, b: float) -> float:
    if metric == "baseten_container_cpu_usage_seconds_total":
        return round(cumulative(dep, metric, labels, b) - cumulative(dep, metric, labels, a), 3)
    return float(
        math.floor(cumulative(dep, metric, labels, b)) - math.floor(cumulative(dep, metric, labels, a))
    )


def gauge(dep: SimDeployment, metric: str, t: float) -> float:
    wave = math.sin(t / 60 + _seed(dep.seed_key) % 628 / 100)
    moment = dep.moment(t)
    replicas = moment.active
    if metric == "baseten_replicas_active":
        return float(replicas)
    if metric == "baseten_replicas_starting":
        return float(moment.starting)
    if metric == "baseten_concurrent_requests":
        return float(max(0, round(moment.rps * 0.25 * (1 + 0.3 * wave))))
    if metric == "baseten_async_queue_size":
        return float(max(0, round(moment.rps * (1 + wave))) + moment.queued)
    if replicas == 0 and metric != "baseten_llm_kv_cache_hit_rate":
        return 0.0  # no replica: no GPU, memory or CPU in use
    if metric == "baseten_gpu_memory_used":
        return float(replicas * (61_440 + round(2048 * wave)))
    if metric == "baseten_gpu_utilization":
        if dep.story is not None:
            util = min(0.99, 0.15 + 0.12 * moment.rps / replicas + 0.05 * wave)
        else:
            util = 0.55 + 0.35 * wave
        return round(util * 100, 1) if dep.gpu_percent else round(util, 3)
    if metric == "baseten_container_cpu_memory_working_set_bytes":
        return float(replicas * 8 * 2**30 + round(wave * 2**28))
    if metric == "baseten_llm_kv_cache_hit_rate":
        return round(0.6 + 0.2 * wave, 3)
    return 0.0


_HIST_BASE = {
    "baseten_end_to_end_response_time_seconds": 0.8,
    "baseten_time_to_first_byte_seconds": 0.12,
    "baseten_time_in_async_queue_seconds": 0.5,
    "baseten_request_size_bytes": 2048.0,
    "baseten_response_size_bytes": 16384.0,
}
_Q_FACTOR = {"0.5": 1.0, "0.9": 1.8, "0.95": 2.3, "0.99": 3.5}


def histogram(dep: SimDeployment, metric: str, labels: dict[str, str], a: float, b: float) -> float | None:
    """A quantile or the average over the step [a, b); null when no request finished in it."""
    if dep.story is not None:
        if scenario.requests_until(dep.story.at(b)) - scenario.requests_until(dep.story.at(a)) <= 0:
            return None
    elif rate(dep, a) == 0:
        return None
    # A wave for texture; smaller on the scenario's deployment, whose load tells the story.
    swing = 0.2 if dep.story is None else 0.05
    base = _HIST_BASE.get(metric, 1.0) * (1 + swing * math.sin(a / 90 + _seed(dep.seed_key) % 7))
    if metric.endswith("_seconds") and dep.story is not None:
        # Response times follow the load on each replica (and a cold start's wait).
        latency, queue_time = scenario.latency_over(dep.story.at(a), dep.story.at(b))
        base *= queue_time if metric == "baseten_time_in_async_queue_seconds" else latency
    if "stat" in labels:
        return round(base * 1.25, 4)
    return round(base * _Q_FACTOR.get(labels.get("quantile", ""), 1.0), 4)
