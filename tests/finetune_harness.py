"""An in-process simulator on loopback with a hand-driven clock, for fine-tune unit tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from exporter.simulator.app import PARTS_KEY, start
from exporter.simulator.state import SimState
from exporter.simulator.together_finetune import FineTuneSim
from exporter.sources.together.api import TogetherAPI
from exporter.upstream.api import Clients
from exporter.upstream.client import UpstreamStats, VendorClient

KEY = "ft-harness-key"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests on, remembering each URL; can answer one request with a fault."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.urls: list[httpx.URL] = []
        self.fail_next: tuple[str, int] | None = None  # (path suffix, status), once
        self.fail: tuple[str, int] | None = None  # (path suffix, status), until cleared
        self.drop_date = False  # answer without a Date header, like a vendor that sends none

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fail_next is not None and request.url.path.endswith(self.fail_next[0]):
            status = self.fail_next[1]
            self.fail_next = None
            return httpx.Response(status, json={"error": {"message": "injected"}})
        if self.fail is not None and request.url.path.endswith(self.fail[0]):
            return httpx.Response(self.fail[1], json={"error": {"message": "injected"}})
        self.urls.append(request.url)
        resp = await self.inner.handle_async_request(request)
        if self.drop_date:
            del resp.headers["date"]
        return resp

    async def aclose(self) -> None:
        await self.inner.aclose()

    def paths(self, suffix: str = "") -> list[httpx.URL]:
        return [u for u in self.urls if u.path.endswith(suffix)]


@dataclass
class Harness:
    clock: Clock
    sim: FineTuneSim
    url: str
    api: TogetherAPI
    transport: RecordingTransport
    http: httpx.AsyncClient
    stats: UpstreamStats = field(default_factory=UpstreamStats)

    async def get(self, path: str, **params: str | int) -> httpx.Response:
        return await self.http.get(path, params=params, headers={"Authorization": f"Bearer {KEY}"})


@contextlib.asynccontextmanager
async def harness(reset: bool = True) -> AsyncIterator[Harness]:
    clock = Clock()
    state = SimState(api_keys=frozenset({KEY}), clock=clock)
    runner, url = await start(state, "127.0.0.1", 0)
    sim = runner.app[PARTS_KEY]["finetune"]
    assert isinstance(sim, FineTuneSim)
    if reset:
        sim.jobs.clear()
    transport = RecordingTransport()
    stats = UpstreamStats()
    client = VendorClient("together", url + "/v1", KEY, max_connections=4, stats=stats, transport=transport)
    clients = Clients()
    clients.replace({("together", "default"): client})
    http = httpx.AsyncClient(base_url=url + "/v1", timeout=5)
    try:
        yield Harness(clock, sim, url, TogetherAPI(clients), transport, http, stats)
    finally:
        await http.aclose()
        await client.aclose()
        await runner.cleanup()
