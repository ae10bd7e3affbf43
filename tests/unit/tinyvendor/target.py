"""One target per gauge, and the one family it yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.configkit.common import GlobalConfig
from exporter.core.exposition import Family, Rendered, Sample
from exporter.core.scope import Scope, target_id
from exporter.sources.base import Target
from exporter.sources.contract import AccountScope, schedule
from exporter.sources.jsonshape import json_object
from exporter.upstream.api import Clients
from tests.unit.tinyvendor.config import NAME, TinyAccount

SOURCE = "tiny_gauge"
ENDPOINT = "/v1/gauges/{name}"
LEVEL = Family(
    "tiny_gauge_level", "gauge", "Level of the gauge (GET /v1/gauges/{name} field level).", labels=("gauge",)
)


def translate(name: str, doc: Any) -> list[Sample]:
    level = json_object(doc, ENDPOINT).get("level")
    return [Sample(LEVEL, (("gauge", name),), float(level))] if isinstance(level, int | float) else []


@dataclass(frozen=True)
class GaugeSettings:
    interval: float
    timeout: float
    scope: Scope


class GaugeTarget(Target):
    source = SOURCE

    def __init__(self, clients: Clients, name: str, settings: GaugeSettings) -> None:
        self._init_from_settings(target_id(SOURCE, settings.scope.account, name), settings)
        self.clients = clients
        self.name = name

    async def poll(self, now: float) -> Rendered:
        reply = await self.clients.get(NAME, self.account).request_json(
            "GET", f"/v1/gauges/{self.name}", source=SOURCE, endpoint=ENDPOINT, timeout=self.timeout
        )
        return self.scope.render(translate(self.name, reply.doc))


def gauges(g: GlobalConfig, acc: TinyAccount, scope: AccountScope, clients: Clients) -> list[Target]:
    out: list[Target] = []
    for gauge in acc.gauges:
        interval, timeout = schedule(g, gauge)
        out.append(GaugeTarget(clients, gauge.name, GaugeSettings(interval, timeout, scope.of(gauge.labels))))
    return out
