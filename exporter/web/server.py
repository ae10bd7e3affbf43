"""The exporter's HTTP endpoints: /metrics, the landing page, /targets, health, readiness, reload."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from exporter import __version__
from exporter.core.exposition import CONTENT_TYPE
from exporter.engine.health import TargetHealth
from exporter.engine.reloadstate import ReloadState
from exporter.sources.base import Target
from exporter.upstream.encoding import accepts_gzip
from exporter.web import status
from exporter.web.httpguard import ConnectionGuard
from exporter.web.pagecache import PageCache
from exporter.web.pages import landing as landing_page
from exporter.web.pages.targets import QueryError, TargetsQuery
from exporter.web.sliced import SlicedPayload

if TYPE_CHECKING:
    from exporter.web.webconfig import WebSecurity

log = logging.getLogger("exporter.web.server")


class ExporterView(Protocol):
    """What the server reads of the running exporter, and the one thing it asks of it.

    The server never changes targets, health or the store; a reload it passes on.
    """

    def target_count(self) -> int: ...

    def targets_with_health(self) -> list[tuple[Target, TargetHealth]]:
        """Every target with its health, by id."""
        ...

    def unpolled_targets(self) -> int:
        """Targets whose first poll has not finished; ready at 0."""
        ...

    def exposition_parts(self) -> list[bytes]:
        """The whole exposition, as parts to send one after the other."""
        ...

    def exposition_gzip_parts(self) -> list[bytes]:
        """The whole exposition as one gzip member, in parts to send one after the other."""
        ...

    async def reload(self) -> tuple[bool, str]: ...

    @property
    def config_path(self) -> Path:
        """The config file the exporter runs on (shown on the landing page)."""
        ...

    @property
    def started_at(self) -> float:
        """Unix time the exporter started."""
        ...

    def reload_state(self) -> ReloadState:
        """What became of the last config load or reload."""
        ...


EXPORTER_KEY = web.AppKey("exporter", ExporterView)
HTML = {"Content-Type": "text/html; charset=utf-8"}
JSON = {"Content-Type": "application/json; charset=utf-8"}
Snapshot = list[tuple[Target, TargetHealth]]


def _page(body: bytes, headers: dict[str, str]) -> web.Response:
    return web.Response(body=SlicedPayload([body]), headers=headers)


def make_app(
    exporter: ExporterView,
    telemetry_path: str = "/metrics",
    security: WebSecurity | None = None,
    guard: ConnectionGuard | None = None,
    *,
    enable_lifecycle: bool = False,
) -> web.Application:
    # The connection guard's middleware first: it must see every request, refused ones too.
    middlewares = [guard.middleware()] if guard is not None else []
    middlewares += security.middlewares if security else []
    app = web.Application(middlewares=middlewares)
    app[EXPORTER_KEY] = exporter

    # The pages read every target's health: rendered in steps, one at a time, and kept
    # for a moment.
    pages: PageCache[Snapshot] = PageCache(
        exporter.targets_with_health, lambda: (exporter.reload_state().attempted_at, exporter.target_count())
    )

    async def close_pages(app: web.Application) -> None:
        pages.close()

    app.on_cleanup.append(close_pages)

    async def metrics(request: web.Request) -> web.Response:
        # Targets' bytes come from the store's cache; the small part of the exporter's
        # own metrics (request counters, reload state, process stats) is rendered per scrape.
        # The cached parts are sent one after the other, never joined (a copy of the whole
        # exposition on every scrape cost more than the rest of the scrape), in slices.
        headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
        if accepts_gzip(", ".join(request.headers.getall("Accept-Encoding", []))):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=SlicedPayload(exporter.exposition_gzip_parts()), headers=headers)
        return web.Response(body=SlicedPayload(exporter.exposition_parts()), headers=headers)

    async def landing(request: web.Request) -> web.Response:
        def render(snapshot: Snapshot) -> Iterator[str]:
            data: list[dict[str, Any]] = []
            yield from status.rows_in_steps(snapshot, data)
            overview = landing_page.Overview(
                version=__version__,
                started_at=exporter.started_at,
                config_path=str(exporter.config_path),
                reload=exporter.reload_state(),
                health=status.health_counts(data),
                telemetry_path=telemetry_path,
                lifecycle=enable_lifecycle,
            )
            yield landing_page.render(overview, time.time())

        return _page(await pages.page("landing", render), HTML)

    async def targets(request: web.Request) -> web.Response:
        try:
            query = TargetsQuery.parse(request.query)
        except QueryError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        if request.query.get("format") == "json":
            page = await pages.page(
                ("json", query.state, query.account), lambda snapshot: status.stream_json(snapshot, query)
            )
            return _page(page, JSON)
        page = await pages.page(
            ("html", query), lambda snapshot: status.stream_html(snapshot, query, telemetry_path)
        )
        return _page(page, HTML)

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="Healthy.\n")

    async def ready(request: web.Request) -> web.Response:
        pending = exporter.unpolled_targets()
        if pending == 0:
            return web.Response(text="Ready.\n")
        return web.Response(status=503, text=f"Not ready: {pending} targets not polled yet.\n")

    async def reload(request: web.Request) -> web.Response:
        if not enable_lifecycle:
            # As Prometheus: reloading over HTTP is opt-in; SIGHUP always works.
            return web.Response(status=403, text="Lifecycle API is not enabled (--web.enable-lifecycle).\n")
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
