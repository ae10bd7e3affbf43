"""The whole config file, validated."""

from __future__ import annotations

from pydantic import Field

from exporter.config.baseten import BasetenConfig
from exporter.config.common import Duration, MetricFilterConfig, Strict
from exporter.config.together import TogetherConfig


class GlobalConfig(Strict):
    poll_interval: Duration = 30.0
    timeout: Duration = 10.0
    # First polls are spread over this window (or the poll interval, if shorter) so
    # that targets do not all fire at start-up; later polls keep that phase.
    start_spread: Duration = 10.0
    # A failing target keeps its last values this long after its last success, so one
    # failed poll does not punch holes in graphs; then its series disappear.
    stale_grace: Duration = 300.0
    # Families every account keeps or drops (each account may narrow it further).
    metric_filter: MetricFilterConfig = Field(default_factory=MetricFilterConfig)


class Config(Strict):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    together: TogetherConfig | None = None
    baseten: BasetenConfig | None = None

    def watches_nothing(self) -> bool:
        """True when no section names a target or turns on a discovery: what an empty
        or half-written file looks like, which a reload must not take for an intent to
        stop watching everything."""
        together = self.together.account_list() if self.together is not None else []
        baseten = self.baseten.account_list() if self.baseten is not None else []
        together_idle = not any(
            t.queues or t.probes or t.fine_tunes.jobs or t.fine_tunes.discovery.enabled for _, t in together
        )
        baseten_idle = not any(b.deployments or b.discovery for _, b in baseten)
        return together_idle and baseten_idle
