"""Together AI queue depth per model: one target per model polling ``GET /queue/metrics``
(what it yields: ``queue_translate``)."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.core.exposition import Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import Target
from exporter.sources.together.api import QUEUE_SOURCE as SOURCE
from exporter.sources.together.api import TogetherAPI
from exporter.sources.together.queue_translate import translate


@dataclass(frozen=True)
class QueueSettings:
    """Everything from the config that shapes a queue's polls (its target's ``settings``)."""

    interval: float
    timeout: float
    scope: Scope = DEFAULT_SCOPE


class QueueTarget(Target):
    source = SOURCE

    def __init__(self, api: TogetherAPI, model: str, settings: QueueSettings) -> None:
        self._init_from_settings(target_id(SOURCE, settings.scope.account, model), settings)
        self.api = api
        self.model = model

    async def poll(self, now: float) -> Rendered:
        doc = await self.api.queue_metrics(self.model, timeout=self.timeout)
        return self.scope.render(translate(self.model, doc))
