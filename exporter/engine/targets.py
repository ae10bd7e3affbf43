"""From a validated config to the list of static targets, vendor by vendor, account by account.

Each vendor builds its targets (``Vendor.builders``) from an account, the global section
and the account's scope: its account name, its labels (each target's own override them)
its metric filter and its series limit. Each target carries one frozen settings object
made from the config: a reload that builds an equal one keeps the running target, state
and all; a different one replaces it. The config's native namespaces go to every
account's scope, for its relays to keep out of.
"""

from __future__ import annotations

from exporter.config import ConfigBase
from exporter.config.filters import account_filter
from exporter.sources.base import Target
from exporter.sources.contract import AccountScope
from exporter.upstream.api import Clients


def build_targets(cfg: ConfigBase, clients: Clients) -> list[Target]:
    out: list[Target] = []
    namespaces = cfg.native_namespaces()
    for vendor, _, account in cfg.accounts():
        scope = AccountScope(
            account.name,
            account.labels,
            account_filter(cfg, account),
            account.max_series_per_target,
            namespaces,
        )
        out += vendor.targets(cfg.global_, account, scope, clients)
    return out
