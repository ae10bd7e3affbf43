"""Together AI queue depth per model: one target per model polling ``GET /queue/metrics``
(what it yields: ``queue_translate``)."""

from __future__ import annotations

from exporter.exposition import Rendered, render
from exporter.sources.base import Target
from exporter.sources.together.queue_translate import ENDPOINT, translate
from exporter.upstream import Clients

SOURCE = "together_queue"


class QueueTarget(Target):
    source = SOURCE

    def __init__(self, clients: Clients, model: str, *, interval: float, timeout: float) -> None:
        super().__init__(
            f"{SOURCE}/{model}", interval=interval, timeout=timeout, settings=(model, interval, timeout)
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
