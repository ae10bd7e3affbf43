"""Warnings about filter expressions that cannot do what they were written for.

An expression that matches no family the config's targets can export has no effect,
which is nearly always a misspelt name or a glob written where a regular expression
belongs. An allow list that leaves out the families dashboards join on (a vendor's
``Joined``: ``baseten_deployment_info`` and ``baseten_deployment_status``) silently
removes what they join on for names and health. Both are valid, so they are warnings,
with the line of the expression.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from exporter.config.accounts import PathT
from exporter.config.filters import account_filter
from exporter.configkit.common import AccountCommon, MetricFilterConfig
from exporter.core.scope import HEALTH_PREFIX
from exporter.sources.contract import FilterKind, Joined

if TYPE_CHECKING:
    from exporter.config.model import ConfigBase

# The text a pattern starts with, up to its first special character.
_LITERAL_START = re.compile(r"^[A-Za-z0-9_:]*")
# A '*' after a plain character: 'baseten_*' repeats the '_', where a glob meant any text.
_GLOB_STAR = re.compile(r"[A-Za-z0-9_:]\*")


def _families(kinds: Iterable[FilterKind]) -> set[str]:
    return {f for kind in kinds for f in kind.families}


def _may_match(pattern: str, families: set[str], open_prefixes: Collection[str]) -> bool:
    """Whether ``pattern`` can match a family: a known one, or one named from vendor
    data (a fine-tune job's logged key), whose names are known only when they come."""
    compiled = re.compile(pattern)
    if any(compiled.fullmatch(f) for f in families):
        return True
    start = _LITERAL_START.match(pattern)
    literal = start.group(0) if start else ""
    return any(literal.startswith(prefix) or prefix.startswith(literal) for prefix in open_prefixes)


def _unmatched(
    where: PathT, rule: MetricFilterConfig, families: set[str], open_prefixes: Collection[str]
) -> Iterable[tuple[PathT, str]]:
    for key, effect in (("allow", "keeps nothing"), ("deny", "removes nothing")):
        patterns: list[str] = getattr(rule, key)
        reach = [_may_match(p, families, open_prefixes) for p in patterns]
        if key == "allow" and not any(reach):
            continue  # the whole list removes everything: the account's warning says so
        for i, (pattern, matches) in enumerate(zip(patterns, reach, strict=True)):
            if matches or (key == "deny" and pattern.startswith(HEALTH_PREFIX)):
                continue  # a deny naming the exporter's prefix is for its health families
            hint = (
                " (filters are regular expressions: '.*' for any text)" if _GLOB_STAR.search(pattern) else ""
            )
            yield (
                (*where, key, i),
                f"{pattern!r} matches no family this config's targets can export, so it {effect}"
                f"{hint}; see docs/metrics.md for the names",
            )


def reach_warnings(cfg: ConfigBase) -> list[tuple[PathT, str]]:
    """An account's expressions against what its targets can export; the global ones
    against every account's."""
    out: list[tuple[PathT, str]] = []
    every: set[str] = set()
    every_prefix: set[str] = set()
    for vendor, path, account in cfg.accounts():
        kinds = list(vendor.filter_kinds(account))
        families = _families(kinds)
        prefixes = {kind.open_prefix for kind in kinds if kind.open_prefix is not None}
        every |= families
        every_prefix |= prefixes
        if families or prefixes:
            out += _unmatched((*path, "metric_filter"), account.metric_filter, families, prefixes)
        if vendor.joined is not None and families:
            out += _dropped_joins(cfg, path, account, vendor.joined, families)
    if every or every_prefix:
        out += _unmatched(("global", "metric_filter"), cfg.global_.metric_filter, every, every_prefix)
    return out


def _dropped_joins(
    cfg: ConfigBase, path: PathT, account: AccountCommon, joined: Joined, families: set[str]
) -> Iterable[tuple[PathT, str]]:
    filt = account_filter(cfg, account)
    dropped = [name for name in joined.families if not filt.keeps(name)]
    if not dropped or not any(filt.keeps(f) for f in families - set(joined.families)):
        return  # nothing dropped, or everything: the other warning says so
    own = account.metric_filter.allow or account.metric_filter.deny
    where: PathT = (*path, "metric_filter") if own else ("global", "metric_filter")
    yield (
        where,
        f"account {account.name!r}: the filter removes {' and '.join(dropped)}, which dashboards join "
        f"on for {joined.purpose}; keep them in the allow list",
    )
