"""The whole config file, validated."""

from __future__ import annotations

from pydantic import Field

from exporter.config.baseten import BasetenConfig
from exporter.config.common import Duration, Strict
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


class Config(Strict):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    together: TogetherConfig | None = None
    baseten: BasetenConfig | None = None
