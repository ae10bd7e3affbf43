"""One log line per account whose API key the vendor refuses, not one per target.

A revoked or mistyped key fails every target of its account at once, with the same
reason; a warning per target buries the one fact that matters (this account's key)
under as many lines as the account has targets. The first target to be refused warns
for the account; the others log at debug; the account warns again only after one of
its targets has been answered since, or a reload gave it a new client (a new key).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.sources.base import Target

REFUSED = "unauthorized"


def account_of(target: Target) -> tuple[str, str]:
    """(vendor, account): the vendor is the first word of the source's name."""
    return target.source.split("_", 1)[0], target.scope.account


@dataclass
class KeyRefusals:
    _refused: set[tuple[str, str]] = field(default_factory=set)

    def refused(self, target: Target) -> bool:
        """Note that ``target``'s key was refused; True if its account was not already known refused."""
        account = account_of(target)
        first = account not in self._refused
        self._refused.add(account)
        return first

    def answered(self, target: Target) -> None:
        """A target of the account was answered: its key works again."""
        self._refused.discard(account_of(target))

    def forget(self, vendor: str, account: str) -> None:
        """The account's key may have changed: its next refusal warns again."""
        self._refused.discard((vendor, account))
