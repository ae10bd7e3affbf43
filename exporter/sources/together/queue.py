"""Together AI queue depth per model: one target per model polling ``GET /queue/metrics``
(what it yields: ``queue_translate``)."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.exposition import Rendered, render
from exporter.sources.base import Target
from exporter.sources.together.queue_translate import ENDPOINT, translate
from exporter.upstream import Clients

SOURCE = "together_queue"


@dataclass(frozen=True)
class QueueSettings:
    """Everything from the config that shapes a queue's polls (its target's ``settings``)."""

    interval: float
    timeout: float


class QueueTarget(Target):
    source = SOURCE

    def __init__(self, clients: Clients, model: str, settings: QueueSettings) -> None:
        super().__init__(
            f"{SOURCE}/{model}", interval=settings.interval, timeout=settings.timeout, settings=settings
        )
        self.clients = clients
        self.model = model

    async def poll(self, now: float) -> Rendered:
        doc = (
            await self.clients.get("together").request_json(
                "GET",
                ENDPOINT,
                params={"model": self.model},
                source=SOURCE,
                endpoint=ENDPOINT,
                timeout=self.timeout,
            )
        ).doc
        return render(translate(self.model, doc))
