"""The simulator's web application: auth, request log and each endpoint family."""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.simulator.baseten import BasetenSim
from exporter.simulator.errors import unauthorized
from exporter.simulator.faults import Faults
from exporter.simulator.state import SimState
from exporter.simulator.together_finetune import FineTuneSim
from exporter.simulator.together_jobs import JobsSim
from exporter.simulator.together_queue import QueueSim

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE_KEY = web.AppKey("sim_state", SimState)
QUEUE_KEY = web.AppKey("queue_sim", QueueSim)
JOBS_KEY = web.AppKey("jobs_sim", JobsSim)
FINETUNE_KEY = web.AppKey("finetune_sim", FineTuneSim)
BASETEN_KEY = web.AppKey("baseten_sim", BasetenSim)
FAULTS_KEY = web.AppKey("faults", Faults)


def _middleware(state: SimState) -> Middleware:
    @web.middleware
    async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        if request.path.startswith("/_sim/"):
            return await handler(request)
        entry = state.record(request.method, template, request.path_qs)
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() not in ("bearer", "api-key") or key not in state.api_keys:
            entry.status = 401
            return unauthorized()
        resp = await handler(request)
        entry.status = resp.status
        if not resp.prepared:
            # The vendor's "now" is the simulator's clock, which tests may drive or skew.
            resp.headers["Date"] = email.utils.formatdate(state.clock(), usegmt=True)
        return resp

    return mw


def make_app(state: SimState) -> web.Application:
    faults = Faults()
    # Outermost first: every request is logged and authenticated, then faults apply.
    app = web.Application(middlewares=[_middleware(state), faults.middleware()])
    app[STATE_KEY] = state
    app[FAULTS_KEY] = faults
    faults.install(app)
    queue = QueueSim(state)
    app[QUEUE_KEY] = queue
    queue.install(app)
    jobs = JobsSim(state)
    app[JOBS_KEY] = jobs
    jobs.install(app)
    finetune = FineTuneSim(state)
    app[FINETUNE_KEY] = finetune
    finetune.install(app)
    baseten = BasetenSim(state)
    app[BASETEN_KEY] = baseten
    baseten.install(app)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({f"{m} {p}": n for (m, p), n in sorted(state.requests.items())})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def request_log(request: web.Request) -> web.Response:
        """Every request with its arrival time and status (null if none was sent).

        ``?since=<unix time>`` and ``?route=<template>`` filter.
        """
        since = float(request.query.get("since", "0"))
        route = request.query.get("route")
        return web.json_response(
            [
                {"t": e.t, "method": e.method, "route": e.route, "path": e.path, "status": e.status}
                for e in state.log
                if e.t >= since and (route is None or e.route == route)
            ]
        )

    app.router.add_get("/_sim/requests", stats)
    app.router.add_get("/_sim/requests/log", request_log)
    app.router.add_get("/_sim/health", health)
    return app


async def start(state: SimState, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Start the simulator; return its runner and base URL (port 0 picks a free port)."""
    # Short shutdown: handlers sleeping in a delay fault must not hold up the exit.
    runner = web.AppRunner(make_app(state), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    actual = sockets[0].getsockname()[1] if sockets else port
    return runner, f"http://{host}:{actual}"
