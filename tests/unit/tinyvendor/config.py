"""The ``tiny:`` section: one account written flat or several under ``accounts:``, with gauges."""

from __future__ import annotations

from pydantic import Field, model_validator

from exporter.configkit.common import AccountCommon, Labelled, NonBlank, Schedule
from exporter.configkit.problems import Finding, Path, duplicates
from exporter.configkit.sections import CheckContext, listed_accounts

NAME = "tiny"


class GaugeSection(Schedule, Labelled):
    """One gauge, read with ``GET /v1/gauges/{name}``."""

    name: NonBlank


class TinyAccount(AccountCommon):
    base_url: str = "https://api.tiny.example"
    gauges: list[GaugeSection] = Field(default_factory=list)


class TinySection(TinyAccount):
    accounts: list[TinyAccount] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_reference(self) -> TinySection:
        if not self.accounts:
            self.check_reference()
        return self

    def account_list(self) -> list[tuple[Path, TinyAccount]]:
        return listed_accounts(self, NAME, self)


def gauge_duplicates(accounts: list[tuple[Path, TinyAccount]], ctx: CheckContext) -> list[Finding]:
    out: list[Finding] = []
    for root, account in accounts:
        out += duplicates(
            (((*root, "gauges", i, "name"), g.name) for i, g in enumerate(account.gauges)), "gauge"
        )
    return out
