"""Warnings about filter expressions that cannot do what they were written for.

An expression that matches no family the config's targets can export has no effect,
which is nearly always a misspelt name or a glob written where a regular expression
belongs. An allow list that leaves out ``baseten_deployment_info`` or
``baseten_deployment_status`` silently removes what dashboards join on for names and
health. Both are valid, so they are warnings, with the line of the expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from exporter.config.accounts import PathT, accounts_of
from exporter.config.baseten import BasetenAccount
from exporter.config.common import MetricFilterConfig
from exporter.config.filters import account_filter, kinds_of
from exporter.core.scope import HEALTH_PREFIX
from exporter.sources.baseten.layout import INFO_NAME, STATUS_NAME
from exporter.sources.together.finetune.names import PREFIX as LOGGED_KEY_PREFIX

if TYPE_CHECKING:
    from exporter.config.model import Config

# The text a pattern starts with, up to its first special character.
_LITERAL_START = re.compile(r"^[A-Za-z0-9_:]*")
# A '*' after a plain character: 'baseten_*' repeats the '_', where a glob meant any text.
_GLOB_STAR = re.compile(r"[A-Za-z0-9_:]\*")


def _families(account_kinds: Iterable[tuple[str, tuple[str, ...], tuple[str, ...]]]) -> set[str]:
    return {f for _, _, families in account_kinds for f in families}


def _may_match(pattern: str, families: set[str], logged_keys: bool) -> bool:
    """Whether ``pattern`` can match a family: a known one, or (with fine-tune jobs) one
    named after a logged key, whose names are known only when the job logs them."""
    compiled = re.compile(pattern)
    if any(compiled.fullmatch(f) for f in families):
        return True
    start = _LITERAL_START.match(pattern)
    literal = start.group(0) if start else ""
    return logged_keys and (literal.startswith(LOGGED_KEY_PREFIX) or LOGGED_KEY_PREFIX.startswith(literal))


def _unmatched(
    where: PathT, rule: MetricFilterConfig, families: set[str], logged_keys: bool
) -> Iterable[tuple[PathT, str]]:
    for key, effect in (("allow", "keeps nothing"), ("deny", "removes nothing")):
        patterns: list[str] = getattr(rule, key)
        reach = [_may_match(p, families, logged_keys) for p in patterns]
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


def reach_warnings(cfg: Config) -> list[tuple[PathT, str]]:
    out: list[tuple[PathT, str]] = []
    every: set[str] = set()
    any_logged = False
    for _, path, account in accounts_of(cfg):
        kinds = list(kinds_of(account))
        families = _families(kinds)
        logged = any(kind.startswith("fine-tune") for kind, _, _ in kinds)
        every |= families
        any_logged |= logged
        if families:
            out += _unmatched((*path, "metric_filter"), account.metric_filter, families, logged)
        if isinstance(account, BasetenAccount) and families:
            out += _dropped_info(cfg, path, account)
    if every:
        out += _unmatched(("global", "metric_filter"), cfg.global_.metric_filter, every, any_logged)
    return out


def _dropped_info(cfg: Config, path: PathT, account: BasetenAccount) -> Iterable[tuple[PathT, str]]:
    filt = account_filter(cfg, account)
    dropped = [name for name in (INFO_NAME, STATUS_NAME) if not filt.keeps(name)]
    if not dropped or not any(filt.keeps(f) for f in _families(kinds_of(account)) - {INFO_NAME, STATUS_NAME}):
        return  # nothing dropped, or everything: the other warning says so
    own = account.metric_filter.allow or account.metric_filter.deny
    where: PathT = (*path, "metric_filter") if own else ("global", "metric_filter")
    yield (
        where,
        f"account {account.name!r}: the filter removes {' and '.join(dropped)}, which dashboards join "
        "on for deployment names and status; keep them in the allow list",
    )
