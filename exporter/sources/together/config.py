"""The ``together:`` section: one account, written flat, or several under ``accounts:``.

The flat form (``together: {api_key_env: ..., queues: [...]}``) is one account named
``default`` (or ``name:``); ``together: {accounts: [{name: prod, ...}, ...]}`` holds
several, each with its own key, URL, limits, labels, filter and targets.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from exporter.configkit.common import AccountCommon, Labelled, NonBlank, Schedule
from exporter.configkit.problems import Finding, Path, duplicates
from exporter.configkit.sections import CheckContext, listed_accounts
from exporter.sources.relay.config import PrometheusEndpoint, endpoint_checks
from exporter.sources.together.finetune.config import FineTunesConfig, fine_tune_checks
from exporter.sources.together.probe_config import ProbeConfig, probe_checks

NAME = "together"
DEFAULT_TOGETHER_URL = "https://api.together.ai/v1"


class QueueSection(Schedule, Labelled):
    """One model whose queue is polled with ``GET /queue/metrics?model=``."""

    # Its name in config.schema.json, from before the runtime target took the name.
    model_config = ConfigDict(title="QueueTarget")

    model: NonBlank


class TogetherAccount(AccountCommon):
    base_url: str = DEFAULT_TOGETHER_URL
    queues: list[QueueSection] = Field(default_factory=list)
    # Opt-in synthetic probes (each submits a real, billed job): off unless listed.
    probes: list[ProbeConfig] = Field(default_factory=list)
    fine_tunes: FineTunesConfig = Field(default_factory=FineTunesConfig)
    # Endpoints in the Prometheus text format (the dedicated-endpoint metrics), relayed
    # with the account's key (Bearer by default).
    prometheus_endpoints: list[PrometheusEndpoint] = Field(default_factory=list)


class TogetherConfig(TogetherAccount):
    """The section: its own fields are the one account of the flat form; with
    ``accounts:`` they stay unset (checked with their lines in ``accounts.checks``)."""

    accounts: list[TogetherAccount] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_reference(self) -> TogetherConfig:
        if not self.accounts:
            self.check_reference()
        return self

    def account_list(self) -> list[tuple[Path, TogetherAccount]]:
        """Each account with the config path it is written at."""
        return listed_accounts(self, NAME, self)


Accounts = list[tuple[Path, TogetherAccount]]


def queue_duplicates(accounts: Accounts, ctx: CheckContext) -> list[Finding]:
    out: list[Finding] = []
    for root, account in accounts:
        items = (((*root, "queues", i, "model"), q.model) for i, q in enumerate(account.queues))
        out += duplicates(items, "queue model")
    return out


def probe_problems(accounts: Accounts, ctx: CheckContext) -> list[Finding]:
    return [problem for root, account in accounts for problem in probe_checks(root, account.probes)]


def fine_tune_problems(accounts: Accounts, ctx: CheckContext) -> list[Finding]:
    return [problem for root, account in accounts for problem in fine_tune_checks(root, account.fine_tunes)]


def relay_problems(accounts: Accounts, ctx: CheckContext) -> list[Finding]:
    return [p for root, account in accounts for p in endpoint_checks(root, account.prometheus_endpoints, ctx)]
