"""The ``together:`` section: one account, written flat, or several under ``accounts:``.

The flat form (``together: {api_key_env: ..., queues: [...]}``) is one account named
``default`` (or ``name:``); ``together: {accounts: [{name: prod, ...}, ...]}`` holds
several, each with its own key, URL, limits, labels, filter and targets.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from exporter.config.common import AccountCommon, Labelled, NonBlank, Schedule
from exporter.config.together_finetune import FineTunesConfig
from exporter.config.together_probe import ProbeConfig

DEFAULT_TOGETHER_URL = "https://api.together.ai/v1"

PathT = tuple[str | int, ...]


class QueueTarget(Schedule, Labelled):
    """One model whose queue is polled with ``GET /queue/metrics?model=``."""

    model: NonBlank


class TogetherAccount(AccountCommon):
    base_url: str = DEFAULT_TOGETHER_URL
    queues: list[QueueTarget] = Field(default_factory=list)
    # Opt-in synthetic probes (each submits a real, billed job): off unless listed.
    probes: list[ProbeConfig] = Field(default_factory=list)
    fine_tunes: FineTunesConfig = Field(default_factory=FineTunesConfig)


class TogetherConfig(TogetherAccount):
    """The section: its own fields are the one account of the flat form; with
    ``accounts:`` they stay unset (checked with their lines in ``accounts.checks``)."""

    accounts: list[TogetherAccount] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_reference(self) -> TogetherConfig:
        if not self.accounts:
            self.check_reference()
        return self

    def account_list(self) -> list[tuple[PathT, TogetherAccount]]:
        """Each account with the config path it is written at."""
        if self.accounts:
            return [(("together", "accounts", i), a) for i, a in enumerate(self.accounts)]
        return [(("together",), self)]
