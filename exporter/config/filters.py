"""Warnings about metric filters that leave a kind of target with none of its families.

Such a filter is valid (the targets still poll and report their health), but is far
more often a slip in an expression than an intent, so ``check-config`` and every load
say so, with the file, line and key of the filter. Each vendor says what kinds of
target an account has and which families each may yield (``Vendor.filter_kinds``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporter.config.accounts import PathT
from exporter.configkit.common import AccountCommon, MetricFilterConfig
from exporter.core.scope import FilterRule, MetricFilter

if TYPE_CHECKING:
    from exporter.config.model import ConfigBase


def rule(cfg: MetricFilterConfig) -> FilterRule:
    return FilterRule(tuple(cfg.allow), tuple(cfg.deny))


def account_filter(cfg: ConfigBase, account: AccountCommon) -> MetricFilter:
    """The filter of an account's targets: the global rule, then the account's."""
    return MetricFilter((rule(cfg.global_.metric_filter), rule(account.metric_filter)))


def filter_warnings(cfg: ConfigBase) -> list[tuple[PathT, str]]:
    out: list[tuple[PathT, str]] = []
    for vendor, path, account in cfg.accounts():
        filt = account_filter(cfg, account)
        if not filt.active:
            continue
        own = account.metric_filter.allow or account.metric_filter.deny
        where: PathT = (*path, "metric_filter") if own else ("global", "metric_filter")
        for kind in vendor.filter_kinds(account):
            # A kind whose families are all named from vendor data cannot be judged here.
            if kind.families and not any(filt.keeps(f) for f in kind.families):
                shown = kind.shown
                out.append(
                    (
                        where,
                        f"account {account.name!r}: the filter removes every family of its {kind.what} "
                        f"({', '.join(shown[:3])}{', …' if len(shown) > 3 else ''}); "
                        "they will export their health series only",
                    )
                )
    return out
