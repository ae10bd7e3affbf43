"""Baseten's model and deployment lists → what discovery needs, and the ``_info`` and status gauges.

Pure: ``GET /v1/models`` (``{models: [...]}``) and ``GET /v1/models/{id}/deployments``
(``{deployments: [...]}``) are validated into small records; a deployment's names and
environment become ``_info``, and its status one series per documented value, the
way kube-state-metrics shows a pod's phase::

    # TYPE baseten_deployment_info gauge
    baseten_deployment_info{model_id="m",deployment_id="d",model_name="llama",deployment_name="v3",
                            environment="production",is_production="true"} 1
    # TYPE baseten_deployment_status gauge
    baseten_deployment_status{model_id="m",deployment_id="d",status="ACTIVE"} 1
    baseten_deployment_status{model_id="m",deployment_id="d",status="BUILDING"} 0
    …
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from exporter.core.errors import InvalidResponse
from exporter.core.exposition import Family, Labels, Sample
from exporter.sources.baseten.layout import INFO_NAME, STATUS_NAME
from exporter.sources.baseten.vendor import DEPLOYMENT_STATUSES
from exporter.sources.jsonshape import objects, required_str

MODELS_ENDPOINT = "/v1/models"
DEPLOYMENTS_ENDPOINT = "/v1/models/{model_id}/deployments"

INFO = Family(
    INFO_NAME,
    "gauge",
    "Baseten deployment metadata (GET /v1/models/{model_id}/deployments: name, environment, "
    "is_production; model name from GET /v1/models); value is always 1.",
    labels=("model_id", "deployment_id", "model_name", "deployment_name", "environment", "is_production"),
)
STATUS = Family(
    STATUS_NAME,
    "gauge",
    "1 for the deployment's current status, 0 for every other documented one (GET "
    "/v1/models/{model_id}/deployments field status); an undocumented status is a series of its own with 1.",
    labels=("model_id", "deployment_id", "status"),
)
FAMILIES = (INFO, STATUS)
# Documented statuses in a stable order for the exposition.
KNOWN_STATUSES = tuple(sorted(DEPLOYMENT_STATUSES))


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    name: str
    status: str
    is_production: bool
    environment: str | None


@dataclass(frozen=True, slots=True)
class Meta:
    """What the ``_info`` and status gauges say about a deployment."""

    model_name: str
    deployment_name: str
    environment: str
    status: str
    is_production: bool


def parse_models(doc: Any) -> list[Model]:
    where = f"GET {MODELS_ENDPOINT}"
    return [
        Model(required_str(m, "id", f"{where} models[{i}]"), required_str(m, "name", f"{where} models[{i}]"))
        for i, m in enumerate(objects(doc, "models", where))
    ]


def parse_deployments(doc: Any) -> list[Deployment]:
    """Unknown statuses pass through as they are (the vendor adds states over time)."""
    out = []
    for i, d in enumerate(objects(doc, "deployments", f"GET {DEPLOYMENTS_ENDPOINT}")):
        where = f"GET {DEPLOYMENTS_ENDPOINT} deployments[{i}]"
        env = d.get("environment")
        prod = d.get("is_production")
        if env is not None and not isinstance(env, str):
            raise InvalidResponse(f"{where}: environment is not a string or null")
        if not isinstance(prod, bool):
            raise InvalidResponse(f"{where}: is_production is not a boolean")
        out.append(
            Deployment(
                required_str(d, "id", where),
                required_str(d, "name", where),
                required_str(d, "status", where),
                prod,
                env,
            )
        )
    return out


def select(
    deployments: list[Deployment],
    *,
    environments: Collection[str],
    production_only: bool,
    skip_statuses: Collection[str],
) -> list[Deployment]:
    """The deployments a discovery rule polls."""
    return [
        d
        for d in deployments
        if (not environments or (d.environment or "") in environments)
        and (d.is_production or not production_only)
        and d.status not in skip_statuses
    ]


def fits(model: Model, dep: Deployment, max_length: int) -> bool:
    """Whether every string of the pair that becomes a label value (ids, names,
    environment, status) is at most ``max_length`` characters long."""
    return all(
        len(v) <= max_length
        for v in (model.id, model.name, dep.id, dep.name, dep.status, dep.environment or "")
    )


def meta_fits(meta: Meta, max_length: int) -> bool:
    """Whether every label value of ``meta`` is at most ``max_length`` characters long
    (its ids are the target's, bounded where it is built)."""
    return all(
        len(v) <= max_length for v in (meta.model_name, meta.deployment_name, meta.environment, meta.status)
    )


def meta_for(model: Model, dep: Deployment) -> Meta:
    return Meta(model.name, dep.name, dep.environment or "", dep.status, dep.is_production)


def info_sample(ids: Labels, meta: Meta) -> Sample:
    return Sample(
        INFO,
        (
            *ids,
            ("model_name", meta.model_name),
            ("deployment_name", meta.deployment_name),
            ("environment", meta.environment),
            ("is_production", "true" if meta.is_production else "false"),
        ),
        1.0,
    )


def status_samples(ids: Labels, status: str) -> list[Sample]:
    """One series per documented status, 1 for ``status``; an undocumented one is added with 1."""
    out = [Sample(STATUS, (*ids, ("status", s)), 1.0 if s == status else 0.0) for s in KNOWN_STATUSES]
    if status not in DEPLOYMENT_STATUSES:
        out.append(Sample(STATUS, (*ids, ("status", status)), 1.0))
    return out


def meta_samples(ids: Labels, meta: Meta) -> list[Sample]:
    """What a deployment's metadata shows: its ``_info`` and its status."""
    return [info_sample(ids, meta), *status_samples(ids, meta.status)]
