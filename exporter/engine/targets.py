"""From a validated config to the list of static targets, source by source, account by account.

Each target type is built from its identity (its account and the vendor ids its id is
made of) and one frozen settings object made here from the config. That object is the
target's ``settings``: a reload that builds an equal one keeps the running target,
state and all; a different one replaces it. Part of it is the target's ``Scope``: its
account, its labels (the account's, overridden by its own) and its metric filter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from exporter.config import Config, PathT
from exporter.config.baseten import BasetenAccount, effective
from exporter.config.common import Schedule
from exporter.config.filters import account_filter
from exporter.config.together import TogetherAccount
from exporter.core.scope import MetricFilter, Scope, merged_labels
from exporter.sources.base import Target
from exporter.sources.baseten import discovery as baseten_discovery
from exporter.sources.baseten import target as baseten
from exporter.sources.baseten.api import BasetenAPI
from exporter.sources.together import probe as together_probe
from exporter.sources.together import queue as together_queue
from exporter.sources.together.api import TogetherAPI
from exporter.sources.together.finetune import target as together_finetune
from exporter.upstream.api import AccountAPI
from exporter.upstream.client import Clients


class AccountScope:
    """Makes the scopes of one account's targets, all sharing its filter and series limit."""

    def __init__(
        self, account: str, labels: dict[str, str], metric_filter: MetricFilter, max_series: int
    ) -> None:
        self.account = account
        self.labels = labels
        self.filter = metric_filter
        self.max_series = max_series

    def of(self, *inner: dict[str, str]) -> Scope:
        return Scope(self.account, merged_labels(self.labels, *inner), self.filter, self.max_series)


A = TypeVar("A", TogetherAccount, BasetenAccount)
API = TypeVar("API", bound=AccountAPI)
TargetBuilder = Callable[[Config, Clients], list[Target]]
# Builds one kind of target of one vendor account, whose targets share its API.
Builder = Callable[[Config, A, AccountScope, API], list[Target]]


def schedule(cfg: Config, override: Schedule) -> tuple[float, float]:
    """A target's (interval, timeout): its own settings, else the global defaults."""
    interval = override.poll_interval or cfg.global_.poll_interval
    timeout = override.timeout or cfg.global_.timeout
    return interval, min(timeout, interval)


def _together_queues(
    cfg: Config, acc: TogetherAccount, scope: AccountScope, api: TogetherAPI
) -> list[Target]:
    out: list[Target] = []
    for q in acc.queues:
        interval, timeout = schedule(cfg, q)
        settings = together_queue.QueueSettings(interval, timeout, scope.of(q.labels))
        out.append(together_queue.QueueTarget(api, q.model, settings))
    return out


def _together_probes(
    cfg: Config, acc: TogetherAccount, scope: AccountScope, api: TogetherAPI
) -> list[Target]:
    """Opt-in probes: each poll submits one real job, so only what the config lists."""
    return [
        together_probe.ProbeTarget(
            api,
            p.model,
            together_probe.ProbeSettings.build(
                p.payload,
                p.priority,
                p.info,
                interval=p.interval,
                timeout=p.timeout,
                status_poll_interval=p.status_poll_interval,
                request_timeout=cfg.global_.timeout,
                buckets=p.buckets,
                scope=scope.of(p.labels),
            ),
        )
        for p in acc.probes
    ]


def _together_fine_tunes(
    cfg: Config, acc: TogetherAccount, scope: AccountScope, api: TogetherAPI
) -> list[Target]:
    """Explicit fine-tune jobs, and the discovery of jobs in the watched statuses."""
    ft = acc.fine_tunes

    def job_settings(override: Schedule, labels: dict[str, str]) -> together_finetune.JobSettings:
        shared = Schedule(
            poll_interval=override.poll_interval or ft.poll_interval, timeout=override.timeout or ft.timeout
        )
        interval, timeout = schedule(cfg, shared)
        return together_finetune.JobSettings(
            interval,
            timeout,
            ft.resolution,
            ft.retention,
            ft.max_keys,
            ft.logged_at_overlap,
            scope=scope.of(labels),
            max_key_length=ft.max_key_length,
        )

    out: list[Target] = [
        together_finetune.JobTarget(api, job.id, job_settings(job, job.labels)) for job in ft.jobs
    ]
    if ft.discovery.enabled:
        interval, timeout = schedule(
            cfg, Schedule(poll_interval=ft.discovery.refresh_interval, timeout=ft.discovery.timeout)
        )
        settings = together_finetune.FineTuneDiscoverySettings(
            frozenset(ft.discovery.statuses),
            interval,
            timeout,
            jobs=job_settings(Schedule(), ft.discovery.labels),
            scope=scope.of(ft.discovery.labels),
            max_targets=ft.discovery.max_targets,
        )
        out.append(together_finetune.FineTuneDiscovery(api, settings))
    return out


def _baseten_deployments(
    cfg: Config, acc: BasetenAccount, scope: AccountScope, api: BasetenAPI
) -> list[Target]:
    out: list[Target] = []
    for d in acc.deployments:
        interval, timeout = schedule(cfg, d)
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


def _baseten_discovery(
    cfg: Config, acc: BasetenAccount, scope: AccountScope, api: BasetenAPI
) -> list[Target]:
    out: list[Target] = []
    for i, rule in enumerate(acc.discovery):
        interval, timeout = schedule(cfg, rule)
        rule_scope = scope.of(rule.labels)
        settings = baseten_discovery.DeploymentDiscoverySettings(
            model_names=frozenset(rule.model_names),
            environments=frozenset(rule.environments),
            production_only=rule.production_only,
            skip_statuses=frozenset(rule.skip_statuses),
            interval=rule.refresh_interval,
            timeout=min(cfg.global_.timeout, rule.refresh_interval),
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


TOGETHER_BUILDERS: list[Builder[TogetherAccount, TogetherAPI]] = [
    _together_queues,
    _together_probes,
    _together_fine_tunes,
]
BASETEN_BUILDERS: list[Builder[BasetenAccount, BasetenAPI]] = [_baseten_deployments, _baseten_discovery]


def _account_targets(
    cfg: Config,
    accounts: list[tuple[PathT, A]],
    builders: list[Builder[A, API]],
    api_of: Callable[[str], API],
) -> list[Target]:
    """Every builder's targets for each of one vendor's accounts, in the account's scope
    and with the account's API (``api_of`` its name)."""
    out: list[Target] = []
    for _, acc in accounts:
        scope = AccountScope(acc.name, acc.labels, account_filter(cfg, acc), acc.max_series_per_target)
        api = api_of(acc.name)
        out += [target for build in builders for target in build(cfg, acc, scope, api)]
    return out


def _together_targets(cfg: Config, clients: Clients) -> list[Target]:
    accounts = cfg.together.account_list() if cfg.together is not None else []
    return _account_targets(cfg, accounts, TOGETHER_BUILDERS, lambda name: TogetherAPI(clients, name))


def _baseten_targets(cfg: Config, clients: Clients) -> list[Target]:
    accounts = cfg.baseten.account_list() if cfg.baseten is not None else []
    return _account_targets(cfg, accounts, BASETEN_BUILDERS, lambda name: BasetenAPI(clients, name))


BUILDERS: list[TargetBuilder] = [_together_targets, _baseten_targets]


def build_targets(cfg: Config, clients: Clients) -> list[Target]:
    return [t for build in BUILDERS for t in build(cfg, clients)]
