"""Warnings about metric filters that leave a kind of target with none of its families.

Such a filter is valid (the targets still poll and report their health), but is far
more often a slip in an expression than an intent, so ``check-config`` and every load
say so, with the file, line and key of the filter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from exporter.config.accounts import PathT, accounts_of
from exporter.config.baseten import BasetenAccount
from exporter.config.common import MetricFilterConfig
from exporter.core.scope import FilterRule, MetricFilter
from exporter.sources.baseten.layout import INFO_NAME, STATUS_NAME, possible_families
from exporter.sources.baseten.vendor import DEFAULT_METRICS
from exporter.sources.together import probe_translate, queue_translate
from exporter.sources.together.finetune import names as finetune_names

if TYPE_CHECKING:
    from exporter.config.model import Config
    from exporter.config.together import TogetherAccount

# A logged key nearly every fine-tune job has: stands for the keys, unknown in advance.
_TYPICAL_KEY_FAMILY = finetune_names.metric_name("train/loss")
_QUEUE = (queue_translate.JOBS_WAITING.name, queue_translate.JOBS_RUNNING.name)
_PROBE = tuple(
    f.name
    for f in (
        probe_translate.SUCCESS,
        probe_translate.DURATION,
        probe_translate.RETRIES,
        probe_translate.JOBS,
        probe_translate.PROBES,
        probe_translate.LAST_COMPLETED,
        probe_translate.PHASE_SECONDS,
    )
)
_JOB = (*sorted(finetune_names.FIXED_NAMES - {finetune_names.LISTED_JOBS.name}), _TYPICAL_KEY_FAMILY)
_JOB_LIST = (finetune_names.LISTED_JOBS.name,)


def rule(cfg: MetricFilterConfig) -> FilterRule:
    return FilterRule(tuple(cfg.allow), tuple(cfg.deny))


def account_filter(cfg: Config, account: TogetherAccount | BasetenAccount) -> MetricFilter:
    """The filter of an account's targets: the global rule, then the account's."""
    return MetricFilter((rule(cfg.global_.metric_filter), rule(account.metric_filter)))


# (what the targets are, the names shown, the families they may yield)
Kind = tuple[str, tuple[str, ...], tuple[str, ...]]


def _together_kinds(account: TogetherAccount) -> Iterable[Kind]:
    ft = account.fine_tunes
    if account.queues:
        yield "queues", _QUEUE, _QUEUE
    if account.probes:
        yield "probes", _PROBE, _PROBE
    if ft.jobs or ft.discovery.enabled:
        yield "fine-tune jobs", _JOB, _JOB
    if ft.discovery.enabled:
        yield "fine-tune job list", _JOB_LIST, _JOB_LIST


def _baseten_kinds(account: BasetenAccount) -> Iterable[Kind]:
    for what, items in (("deployments", account.deployments), ("discovery", account.discovery)):
        for i, item in enumerate(items):
            names = tuple(item.metrics if item.metrics is not None else account.metrics) or DEFAULT_METRICS
            families = {f for n in names for f in possible_families(n)}
            yield f"{what}[{i}]", (*names, INFO_NAME), (*sorted(families), INFO_NAME, STATUS_NAME)


def kinds_of(account: TogetherAccount | BasetenAccount) -> Iterable[Kind]:
    """The kinds of target the account has, each with the families it may yield."""
    return _baseten_kinds(account) if isinstance(account, BasetenAccount) else _together_kinds(account)


def filter_warnings(cfg: Config) -> list[tuple[PathT, str]]:
    out: list[tuple[PathT, str]] = []
    for _, path, account in accounts_of(cfg):
        filt = account_filter(cfg, account)
        if not filt.active:
            continue
        own = account.metric_filter.allow or account.metric_filter.deny
        where: PathT = (*path, "metric_filter") if own else ("global", "metric_filter")
        for kind, shown, families in kinds_of(account):
            if not any(filt.keeps(f) for f in families):
                out.append(
                    (
                        where,
                        f"account {account.name!r}: the filter removes every family of its {kind} "
                        f"({', '.join(shown[:3])}{', …' if len(shown) > 3 else ''}); "
                        "they will export their health series only",
                    )
                )
    return out
