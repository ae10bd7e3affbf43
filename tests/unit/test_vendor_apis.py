"""The typed vendor APIs: what each method sends, the labels it is counted under, and ids
from vendor data kept to one path segment, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.core.errors import UpstreamError
from exporter.sources.baseten.api import BasetenAPI
from exporter.sources.baseten.deployment import Query
from exporter.sources.baseten.lists import Model
from exporter.sources.together.api import TogetherAPI
from exporter.upstream.api import Clients
from exporter.upstream.client import UpstreamStats, VendorClient

REQUESTS = "inference_exporter_upstream_requests_total"
ODD_IDS = ("a/b", "a?b=1", "a#b", "../etc", "..%2F..", "x..y", "a b", "%2F", "ünï")


class Vendor:
    """Answers every path with what ``answer`` makes of it, remembering each request as
    (method, raw path, query, JSON body)."""

    def __init__(self, answer: Callable[[str], Any]) -> None:
        self.answer = answer
        self.seen: list[tuple[str, str, dict[str, str], Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        raw_path = request.raw_path.split("?", 1)[0]
        self.seen.append((request.method, raw_path, dict(request.query), body))
        status, doc = self.answer(raw_path)
        return web.json_response(doc, status=status)


@asynccontextmanager
async def account(
    vendor: str, answer: Callable[[str], Any], account: str = "default"
) -> AsyncIterator[tuple[Vendor, Clients, CollectorRegistry]]:
    """One account of ``vendor`` on loopback, its client the daemon's (aiohttp) one."""
    fake = Vendor(answer)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    registry = CollectorRegistry()
    # Together's base URL names its API version; Baseten's paths do.
    url = f"http://127.0.0.1:{runner.addresses[0][1]}" + ("/v1" if vendor == "together" else "")
    client = VendorClient(vendor, url, "k", max_connections=2, stats=UpstreamStats(registry, account=account))
    clients = Clients()
    clients.replace({(vendor, account): client})
    try:
        yield fake, clients, registry
    finally:
        await client.aclose()
        await runner.cleanup()


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


def counted(registry: CollectorRegistry, source: str, endpoint: str, code: str = "200") -> float:
    labels = {"source": source, "endpoint": endpoint, "code": code, "account": "default"}
    return registry.get_sample_value(REQUESTS, labels) or 0.0


def baseten_answer(path: str) -> tuple[int, Any]:
    if path.endswith("/deployments"):
        return 200, {"deployments": []}
    if path.endswith("/metrics"):
        return 200, {"mode": "CURRENT"}
    return 200, {"models": [{"id": "m", "name": "n"}]}


def together_answer(path: str) -> tuple[int, Any]:
    if path.endswith("/metrics"):
        return 200, {"metrics": [{"train/global_step": 1}]}
    if path.endswith("/submit"):
        return 200, {"requestId": "r1"}
    if path.endswith("/status"):
        return 200, {"status": "running"}
    if path.endswith("/cancel"):
        return 409, {"status": "done"}
    if path.endswith("/fine-tunes"):
        return 200, {"data": [{"id": "ft-1", "status": "running"}]}
    return 200, {"status": "running", "messages_waiting": 1, "messages_running": 0}


def test_baseten_methods_own_their_paths_and_labels() -> None:
    async def go() -> None:
        async with account("baseten", baseten_answer) as (fake, clients, registry):
            api = BasetenAPI(clients)
            assert await api.models(timeout=2) == [Model("m", "n")]
            assert await api.deployments("m", timeout=2) == []
            doc = await api.deployment_metrics("m", "d", Query("CURRENT", ("x",)), timeout=2)
            assert doc == {"mode": "CURRENT"}
            assert [(m, p, q) for m, p, q, _ in fake.seen] == [
                ("GET", "/v1/models", {}),
                ("GET", "/v1/models/m/deployments", {}),
                ("GET", "/v1/models/m/deployments/d/metrics", {"mode": "CURRENT", "metrics": "x"}),
            ]
            assert counted(registry, "baseten_discovery", "/v1/models") == 1
            assert counted(registry, "baseten_discovery", "/v1/models/{model_id}/deployments") == 1
            metrics = "/v1/models/{model_id}/deployments/{deployment_id}/metrics"
            assert counted(registry, "baseten", metrics) == 1

    run(go)


def test_together_methods_own_their_paths_and_labels() -> None:
    async def go() -> None:
        async with account("together", together_answer) as (fake, clients, registry):
            api = TogetherAPI(clients)
            assert await api.queue_metrics("org/m", timeout=2) == together_answer("/queue/metrics")[1]
            assert await api.submit({"model": "org/m", "payload": {}}, timeout=2) == "r1"
            assert (await api.status("r1", "org/m", timeout=2)).status == "running"
            assert await api.cancel("r1", "org/m", timeout=2) == "done"  # a 409 says what it is now
            assert (await api.fine_tune("ft-1", timeout=2)).status == "running"
            rows = await api.fine_tune_metrics("ft-1", timeout=2, logged_at_from=1_700_000_000.0)
            assert rows.rows == [{"train/global_step": 1}] and rows.read_at is not None
            await api.fine_tune_metrics("ft-1", timeout=2, resolution=50)
            assert await api.fine_tunes(timeout=2) == [("ft-1", "running")]
            assert [(m, p, q, b) for m, p, q, b in fake.seen] == [
                ("GET", "/v1/queue/metrics", {"model": "org/m"}, None),
                ("POST", "/v1/queue/submit", {}, {"model": "org/m", "payload": {}}),
                ("GET", "/v1/queue/status", {"request_id": "r1", "model": "org/m"}, None),
                ("POST", "/v1/queue/cancel", {}, {"model": "org/m", "request_id": "r1"}),
                ("GET", "/v1/fine-tunes/ft-1", {}, None),
                ("GET", "/v1/fine-tunes/ft-1/metrics", {"logged_at_from": "2023-11-14T22:13:20Z"}, None),
                ("GET", "/v1/fine-tunes/ft-1/metrics", {"resolution": "50"}, None),
                ("GET", "/v1/fine-tunes", {}, None),
            ]
            for source, endpoint, code in [
                ("together_queue", "/queue/metrics", "200"),
                ("together_queue_probe", "/queue/submit", "200"),
                ("together_queue_probe", "/queue/status", "200"),
                ("together_queue_probe", "/queue/cancel", "409"),
                ("together_finetune", "/fine-tunes/{id}", "200"),
                ("together_finetune_discovery", "/fine-tunes", "200"),
            ]:
                assert counted(registry, source, endpoint, code) == 1, (source, endpoint)
            assert counted(registry, "together_finetune", "/fine-tunes/{id}/metrics") == 2

    run(go)


@pytest.mark.parametrize("odd", ODD_IDS)
def test_an_id_from_vendor_data_stays_one_path_segment(odd: str) -> None:
    async def go() -> None:
        async with account("baseten", baseten_answer) as (fake, clients, _):
            api = BasetenAPI(clients)
            await api.deployments(odd, timeout=2)
            await api.deployment_metrics(odd, odd, Query("CURRENT"), timeout=2)
        async with account("together", together_answer) as (together, clients, _):
            await TogetherAPI(clients).fine_tune(odd, timeout=2)
            await TogetherAPI(clients).fine_tune_metrics(odd, timeout=2)
        paths = [p for _, p, _, _ in fake.seen + together.seen]
        shapes = [
            ["", "v1", "models", odd, "deployments"],
            ["", "v1", "models", odd, "deployments", odd, "metrics"],
            ["", "v1", "fine-tunes", odd],
            ["", "v1", "fine-tunes", odd, "metrics"],
        ]
        # As the vendor's server splits the path it received, each id is one segment
        # that decodes to the id itself.
        assert [[unquote(s) for s in p.split("/")] for p in paths] == shapes

    run(go)


@pytest.mark.parametrize("dots", ["..", ".", ""])
def test_an_id_that_could_only_be_a_dot_or_empty_segment_is_not_sent(dots: str) -> None:
    async def go() -> None:
        async with account("baseten", baseten_answer) as (fake, clients, _):
            api = BasetenAPI(clients)
            with pytest.raises(UpstreamError) as err:
                await api.deployments(dots, timeout=2)
            assert err.value.reason == "invalid_response"
            with pytest.raises(UpstreamError):
                await api.deployment_metrics("m", dots, Query("CURRENT"), timeout=2)
            assert fake.seen == []

    run(go)


def test_an_api_finds_its_accounts_current_client_at_each_request() -> None:
    """A reload that replaces an account's client reaches the targets holding its API."""

    async def go() -> None:
        async with account("together", together_answer, "prod") as (fake, clients, _):
            api = TogetherAPI(clients, "prod")
            other = TogetherAPI(clients, "staging")
            assert api.configured() and not other.configured()
            with pytest.raises(UpstreamError) as err:
                await other.queue_metrics("m", timeout=2)
            assert err.value.reason == "not_configured"
            first = api.client
            replacement = VendorClient("together", first.base_url, "k2", max_connections=1, stats=first.stats)
            clients.replace({("together", "prod"): replacement})
            try:
                assert api.client is replacement
                await api.queue_metrics("m", timeout=2)
                assert len(fake.seen) == 1
            finally:
                await replacement.aclose()

    run(go)
