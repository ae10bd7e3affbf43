"""The exporter's HTTP endpoints: /metrics, the landing page, /targets, health, readiness, reload."""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.payload import AsyncIterablePayload
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__, status
from exporter.daemon import Exporter
from exporter.encoding import accepts_gzip
from exporter.exposition import CONTENT_TYPE, assemble
from exporter.httpguard import ConnectionGuard
from exporter.webconfig import WebSecurity

log = logging.getLogger("exporter.server")

EXPORTER_KEY = web.AppKey("exporter", Exporter)


def _runtime_registry() -> CollectorRegistry:
    """Process and Python runtime metrics (process_*, python_*), as every exporter has."""
    reg = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg


async def _iterate(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def make_app(
    exporter: Exporter,
    telemetry_path: str = "/metrics",
    security: WebSecurity | None = None,
    guard: ConnectionGuard | None = None,
) -> web.Application:
    # The connection guard's middleware first: it must see every request, refused ones too.
    middlewares = [guard.middleware()] if guard is not None else []
    middlewares += security.middlewares if security else []
    app = web.Application(middlewares=middlewares)
    app[EXPORTER_KEY] = exporter
    runtime = _runtime_registry()
    if security is not None:
        runtime.register(security.collector())

    async def metrics(request: web.Request) -> web.Response:
        # Targets' bytes come from the store's cache; the small global part (request
        # counters, reload state, process stats) is rendered per scrape.
        dynamic = assemble([exporter.global_metrics()]) + generate_latest(runtime)
        headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
        if accepts_gzip(", ".join(request.headers.getall("Accept-Encoding", []))):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=exporter.store.exposition_gzip(dynamic), headers=headers)
        # Uncompressed, the cached per-family blobs are written one after the other
        # once the handler returns, never joined (a copy of the whole exposition on
        # every scrape cost more than the rest of the scrape).
        parts = [*exporter.store.exposition_parts(), dynamic]
        headers["Content-Length"] = str(sum(len(p) for p in parts))
        return web.Response(body=AsyncIterablePayload(_iterate(parts)), headers=headers)

    async def landing(request: web.Request) -> web.Response:
        links = [
            (telemetry_path, "Metrics"),
            ("/targets", "Targets"),
            ("/-/healthy", "Health"),
            ("/-/ready", "Readiness"),
        ]
        items = "".join(f'<li><a href="{html.escape(h)}">{html.escape(t)}</a></li>' for h, t in links)
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>inference-exporter</title></head>"
            f"<body><h1>inference-exporter</h1><p>Version {html.escape(__version__)}. "
            f"{len(exporter.targets)} targets configured.</p><ul>{items}</ul></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def targets(request: web.Request) -> web.Response:
        data = status.rows(exporter.targets, exporter.health)
        if request.query.get("format") == "json":
            return web.json_response({"targets": data})
        return web.Response(text=status.render_html(data), content_type="text/html")

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="Healthy.\n")

    async def ready(request: web.Request) -> web.Response:
        if exporter.ready():
            return web.Response(text="Ready.\n")
        pending = sum(1 for h in exporter.health.values() if not h.polled)
        return web.Response(status=503, text=f"Not ready: {pending} targets not polled yet.\n")

    async def reload(request: web.Request) -> web.Response:
        ok, message = await exporter.reload()
        return web.Response(status=200 if ok else 500, text=message + "\n")

    # With a web config, no route answers "Expect: 100-continue" with an interim 100
    # (see WebSecurity.expect); the fallback gives 404/405 the same handling.
    expect = security.expect if security else None
    app.router.add_get(telemetry_path, metrics, expect_handler=expect)
    app.router.add_get("/", landing, expect_handler=expect)
    app.router.add_get("/targets", targets, expect_handler=expect)
    app.router.add_get("/-/healthy", healthy, expect_handler=expect)
    app.router.add_get("/-/ready", ready, expect_handler=expect)
    app.router.add_post("/-/reload", reload, expect_handler=expect)
    app.router.add_put("/-/reload", reload, expect_handler=expect)
    if security is not None:
        security.add_fallback(app)
    return app
