"""Baseten's own Prometheus endpoints, relayed: the organisation endpoint preset
(``organisation_metrics:``) and the account's generic ``prometheus_endpoints``.

The organisation endpoint (``https://app.baseten.co/metrics``, ``Authorization:
Api-Key``) names its families as the management-API source names its own
(``baseten_inference_requests_total``, ``baseten_end_to_end_response_time_seconds``),
with other types and labels: cumulative counters per status code and real histograms
there, per-step totals and quantiles per deployment here. So its relay puts
``relay_`` before every name by default, and a prefix that leaves relayed names in
``baseten_`` while the config has management-API targets (deployments or discovery,
on any Baseten account) is a config error naming both, the families that would clash,
and the fix.

Pure: config models and checks, no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from exporter.configkit.common import Duration
from exporter.configkit.problems import Finding, Path, format_path
from exporter.configkit.sections import CheckContext
from exporter.sources.baseten.layout import possible_families
from exporter.sources.baseten.vendor import DEFAULT_METRICS
from exporter.sources.relay.config import (
    Auth,
    MetricPrefix,
    PrometheusEndpoint,
    RelaySection,
    RelayUrl,
    bound_checks,
    endpoint_checks,
)
from exporter.sources.relay.names import BASETEN_ORG_PREFIX, collisions, namespace_overlaps

if TYPE_CHECKING:
    from exporter.sources.baseten.config import BasetenAccount

DEFAULT_ORG_URL = "https://app.baseten.co/metrics"
ORG_INTERVAL = 30.0
# The organisation relay's name: the last part of its target id.
ORG_NAME = "organisation"
# The namespace of the management-API source's families.
NAMESPACE = "baseten_"
# The organisation endpoint's documented families (vendor-prometheus-endpoints.md):
# more may come, some behind feature flags.
ORG_FAMILIES = (
    ("baseten_inference_requests_total", "counter"),
    ("baseten_end_to_end_response_time_seconds", "histogram"),
    ("baseten_time_to_first_byte_seconds", "histogram"),
    ("baseten_replicas_active", "gauge"),
    ("baseten_replicas_starting", "gauge"),
    ("baseten_container_cpu_usage_seconds_total", "counter"),
    ("baseten_container_cpu_memory_working_set_bytes", "gauge"),
    ("baseten_gpu_utilization", "gauge"),
)
# Clashing names a config error lists at most.
_SHOWN = 4


class OrganisationMetrics(RelaySection):
    """Baseten's organisation metrics endpoint (cumulative request counters by status
    code, real latency histograms, replicas, CPU, GPU), relayed once per interval with
    the account's key (Authorization: Api-Key)."""

    interval_reason: ClassVar[str] = (
        "the organisation endpoint refreshes every 30 s and allows 6 requests per minute "
        "per organisation (429 beyond)"
    )

    url: RelayUrl = DEFAULT_ORG_URL
    interval: Duration = ORG_INTERVAL
    metric_prefix: MetricPrefix = BASETEN_ORG_PREFIX


class BasetenPrometheusEndpoint(PrometheusEndpoint):
    """An endpoint in the Prometheus text format relayed with the Baseten account's key
    (Authorization: Api-Key by default)."""

    auth: Auth = "api_key"


def _management(accounts: list[tuple[Path, BasetenAccount]]) -> list[tuple[str, frozenset[str]]]:
    """Where the config has management-API targets, each with the families they may emit."""
    out = []
    for root, account in accounts:
        for key in ("deployments", "discovery"):
            items = getattr(account, key)
            if not items:
                continue
            names = {n for item in items for n in (item.metrics or account.metrics or DEFAULT_METRICS)}
            out.append((format_path((*root, key)), frozenset(f for n in names for f in possible_families(n))))
    return out


def _collision(prefix: str, management: list[tuple[str, frozenset[str]]]) -> str:
    where = " and ".join(w for w, _ in management)
    families = frozenset().union(*(f for _, f in management))
    relayed = [(prefix + name, mtype) for name, mtype in ORG_FAMILIES]
    clashes = sorted({c.other for c in collisions(relayed, [(f, "untyped") for f in families])})
    named = ", ".join(clashes[:_SHOWN]) + (", …" if len(clashes) > _SHOWN else "")
    clash = (
        f"{named} would each be defined twice in one exposition"
        if clashes
        else "any family both send would be defined twice in one exposition"
    )
    return (
        f"metric_prefix {prefix!r} leaves the organisation endpoint's relayed families "
        f"(organisation_metrics) in {NAMESPACE}, where the management-API source "
        f"({where}) names its own, with other types and labels: {clash}. "
        f"Keep the default metric_prefix {BASETEN_ORG_PREFIX!r} (or any prefix outside "
        f"{NAMESPACE}), or remove the deployments and discovery rules"
    )


def relay_checks(accounts: list[tuple[Path, BasetenAccount]], ctx: CheckContext) -> list[Finding]:
    """The organisation relay's prefix against the management-API targets of every
    Baseten account, its staleness bound, and each account's ``prometheus_endpoints``."""
    out: list[Finding] = []
    management = _management(accounts)
    for root, account in accounts:
        org = account.organisation_metrics
        taken: tuple[str, ...] = ()
        if org is not None:
            taken = (ORG_NAME,)
            path = (*root, "organisation_metrics")
            if management and namespace_overlaps(org.metric_prefix, (NAMESPACE,)):
                out.append(((*path, "metric_prefix"), _collision(org.metric_prefix, management)))
            out += bound_checks(path, org, ctx)
        out += endpoint_checks(root, list(account.prometheus_endpoints), ctx, taken)
    return out
