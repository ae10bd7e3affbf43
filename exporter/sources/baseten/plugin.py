"""Baseten as a vendor of the exporter: its contract (``exporter.sources.contract``).

One ``baseten:`` section (``config``), whose accounts have deployments and discovery
rules, and relayed Prometheus endpoints, the organisation's first (``organisation``,
``build``); the families of a deployment's metadata (``lists``) and those its
descriptors are mapped to (``layout``); a relay's are the vendor's.
"""

from __future__ import annotations

from collections.abc import Iterator

from exporter.sources.baseten import config, lists, organisation
from exporter.sources.baseten.config import BasetenAccount, BasetenConfig
from exporter.sources.baseten.layout import INFO_NAME, STATUS_NAME, possible_families
from exporter.sources.baseten.vendor import DEFAULT_METRICS
from exporter.sources.contract import Builder, FilterKind, Joined, Vendor

_ORG_DOCUMENTED = tuple(name for name, _ in organisation.ORG_FAMILIES)


def filter_kinds(account: BasetenAccount) -> Iterator[FilterKind]:
    """Each deployment and rule, with the families of the metrics it asks for."""
    for what, items in (("deployments", account.deployments), ("discovery", account.discovery)):
        for i, item in enumerate(items):
            names = tuple(item.metrics if item.metrics is not None else account.metrics) or DEFAULT_METRICS
            families = {f for n in names for f in possible_families(n)}
            yield FilterKind(f"{what}[{i}]", (*names, INFO_NAME), (*sorted(families), INFO_NAME, STATUS_NAME))
    org = account.organisation_metrics
    # A relay's families are the vendor's to name: any, after its prefix (the
    # organisation endpoint's documented ones known in advance).
    if org is not None:
        names = tuple(org.metric_prefix + name for name in _ORG_DOCUMENTED)
        yield FilterKind("organisation_metrics", names, names, open_prefix=org.metric_prefix)
    for e in account.prometheus_endpoints:
        yield FilterKind(f"relay {e.name}", (), (), open_prefix=e.metric_prefix)


def builders() -> tuple[Builder[BasetenAccount], ...]:
    from exporter.sources.baseten import build  # with the targets, and the network stack

    return (build.deployments, build.discovery, build.relays)


def watches(account: BasetenAccount) -> bool:
    return bool(
        account.deployments
        or account.discovery
        or account.organisation_metrics is not None
        or account.prometheus_endpoints
    )


def namespaces(account: BasetenAccount) -> Iterator[str]:
    """The management-API source names every family ``baseten_*``."""
    if account.deployments or account.discovery:
        yield organisation.NAMESPACE


VENDOR = Vendor[BasetenAccount](
    name=config.NAME,
    section=BasetenConfig,
    watches=watches,
    builders=builders,
    # A descriptor's family (``layout``) carries the deployment's ids too, and the
    # descriptor's own label names, which are the vendor's to choose.
    families=lists.FAMILIES,
    filter_kinds=filter_kinds,
    checks=(config.semantic_checks, organisation.relay_checks),
    joined=Joined((INFO_NAME, STATUS_NAME), "deployment names and status"),
    pure_modules=(
        "exporter.sources.baseten.config",
        "exporter.sources.baseten.deployment",
        "exporter.sources.baseten.descriptors",
        "exporter.sources.baseten.layout",
        "exporter.sources.baseten.lists",
        "exporter.sources.baseten.organisation",
        "exporter.sources.baseten.translate",
        "exporter.sources.baseten.vendor",
    ),
    namespaces=namespaces,
)
