"""Baseten's targets from a validated account: its deployments, its discovery rules, and
the Prometheus endpoints it relays (the organisation's first).

Each target is built from its identity (the account and the vendor ids its id is made
of) and one frozen settings object made here from the config: a reload that builds an
equal one keeps the running target, state and all; a different one replaces it.
"""

from __future__ import annotations

from exporter.configkit.common import GlobalConfig
from exporter.sources.base import Target
from exporter.sources.baseten import discovery as baseten_discovery
from exporter.sources.baseten import target as baseten
from exporter.sources.baseten.api import BasetenAPI
from exporter.sources.baseten.config import NAME, BasetenAccount, effective
from exporter.sources.baseten.organisation import ORG_NAME
from exporter.sources.contract import AccountScope, schedule
from exporter.sources.relay.build import relay_target
from exporter.sources.relay.config import AUTH_SCHEMES
from exporter.upstream.api import Clients


def deployments(g: GlobalConfig, acc: BasetenAccount, scope: AccountScope, clients: Clients) -> list[Target]:
    api = BasetenAPI(clients, acc.name)
    out: list[Target] = []
    for d in acc.deployments:
        interval, timeout = schedule(g, d)
        settings = baseten.DeploymentSettings(
            effective(acc, d),
            interval,
            timeout,
            meta_refresh=acc.info_refresh_interval,
            scope=scope.of(d.labels),
            max_families=acc.max_families_per_target,
            max_label_length=acc.max_label_value_length,
        )
        out.append(baseten.DeploymentTarget(api, d.model_id, d.deployment_id, settings))
    return out


def discovery(g: GlobalConfig, acc: BasetenAccount, scope: AccountScope, clients: Clients) -> list[Target]:
    api = BasetenAPI(clients, acc.name)
    out: list[Target] = []
    for i, rule in enumerate(acc.discovery):
        interval, timeout = schedule(g, rule)
        rule_scope = scope.of(rule.labels)
        settings = baseten_discovery.DeploymentDiscoverySettings(
            model_names=frozenset(rule.model_names),
            environments=frozenset(rule.environments),
            production_only=rule.production_only,
            skip_statuses=frozenset(rule.skip_statuses),
            interval=rule.refresh_interval,
            timeout=min(g.timeout, rule.refresh_interval),
            deployments=baseten.DeploymentSettings(
                effective(acc, rule),
                interval,
                timeout,
                scope=rule_scope,
                max_families=acc.max_families_per_target,
                max_label_length=acc.max_label_value_length,
            ),
            scope=rule_scope,
            max_targets=rule.max_targets,
        )
        out.append(baseten_discovery.DeploymentDiscovery(api, i, settings))
    return out


def relays(g: GlobalConfig, acc: BasetenAccount, scope: AccountScope, clients: Clients) -> list[Target]:
    """The organisation endpoint (``Api-Key``) and the account's ``prometheus_endpoints``,
    each fetched with its key; names and labels bounded as the account's deployments' are."""
    out: list[Target] = []
    length = acc.max_label_value_length
    if acc.organisation_metrics is not None:
        org = acc.organisation_metrics
        out.append(relay_target(NAME, g, org, ORG_NAME, AUTH_SCHEMES["api_key"], scope, clients, length))
    for e in acc.prometheus_endpoints:
        out.append(relay_target(NAME, g, e, e.name, AUTH_SCHEMES[e.auth], scope, clients, length))
    return out
