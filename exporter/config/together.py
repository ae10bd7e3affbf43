"""The ``together:`` section."""

from __future__ import annotations

from pydantic import Field, field_validator

from exporter.config.common import Schedule, VendorCommon
from exporter.config.together_finetune import FineTunesConfig
from exporter.config.together_probe import ProbeConfig

DEFAULT_TOGETHER_URL = "https://api.together.ai/v1"


class QueueTarget(Schedule):
    """One model whose queue is polled with ``GET /queue/metrics?model=``."""

    model: str = Field(min_length=1)

    @field_validator("model")
    @classmethod
    def _no_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("model must not be blank")
        return v


class TogetherConfig(VendorCommon):
    base_url: str = DEFAULT_TOGETHER_URL
    queues: list[QueueTarget] = Field(default_factory=list)
    # Opt-in synthetic probes (each submits a real, billed job): off unless listed.
    probes: list[ProbeConfig] = Field(default_factory=list)
    fine_tunes: FineTunesConfig = Field(default_factory=FineTunesConfig)
