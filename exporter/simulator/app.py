"""The simulator's web application: auth, request log and each endpoint family.

It serves several organisations (a Together organisation and Baseten workspace each):
every API key belongs to one, and sees only that one's queues, jobs, fine-tunes,
models and deployments; a key that belongs to none gets 401. The ``/_sim/…``
scripting endpoints act on the organisation named by ``?org=`` (default: the
organisation of the keys given without one).
"""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.simulator.errors import unauthorized
from exporter.simulator.faults import Faults
from exporter.simulator.parts import PARTS
from exporter.simulator.ratelimits import TOGETHER_PATHS, TogetherRateLimits
from exporter.simulator.rewrites import Rewrites
from exporter.simulator.state import DEFAULT_ORG, SimState, key_fingerprint

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE_KEY = web.AppKey("sim_state", SimState)
# The default organisation's parts, by name (``exporter.simulator.parts``).
PARTS_KEY = web.AppKey("sim_parts", dict[str, Any])
FAULTS_KEY = web.AppKey("faults", Faults)
ORGS_KEY = web.AppKey("orgs", dict[str, "Organisation"])
# The caller's organisation, set by the middleware for the handler it calls.
CALLER_ORG: ContextVar[str | None] = ContextVar("caller_org", default=None)


class Organisation:
    """Everything one organisation owns, on every vendor: a part of each, by name."""

    def __init__(self, name: str, state: SimState) -> None:
        salt = "" if name == DEFAULT_ORG else name
        self.parts: dict[str, Any] = {
            part.name: part.make(state, salt) for parts in PARTS.values() for part in parts
        }


def _middleware(state: SimState) -> Middleware:
    limits = TogetherRateLimits()

    @web.middleware
    async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        if request.path.startswith("/_sim/"):
            return await handler(request)
        entry = state.record(request.method, template, request.path_qs)
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        org = state.org_of(key) if scheme.lower() in ("bearer", "api-key") else None
        entry.key = key_fingerprint(key) if key else None
        if org is None:
            entry.status = 401
            return unauthorized()
        entry.org = org
        token = CALLER_ORG.set(org)
        try:
            resp = await handler(request)
        finally:
            CALLER_ORG.reset(token)
        entry.status = resp.status
        if not resp.prepared:
            # The vendor's "now" is the simulator's clock, which tests may drive or skew.
            resp.headers["Date"] = email.utils.formatdate(state.clock(), usegmt=True)
            # A fault's own rate-limit headers are what the test asked for: left as they are.
            if request.path.startswith(TOGETHER_PATHS) and not any(
                name.lower().startswith("x-ratelimit-") for name in resp.headers
            ):
                resp.headers.update(limits.headers(org, state.clock()))
        return resp

    return mw


def make_app(state: SimState) -> web.Application:
    faults = Faults()
    rewrites = Rewrites()
    # Outermost first: every request is logged and authenticated, its answer (a fault's
    # too) rewritten, and faults apply.
    app = web.Application(middlewares=[_middleware(state), rewrites.middleware(), faults.middleware()])
    app[STATE_KEY] = state
    app[FAULTS_KEY] = faults
    faults.install(app)
    rewrites.install(app)
    orgs = {name: Organisation(name, state) for name in state.org_names()}
    app[ORGS_KEY] = orgs
    app[PARTS_KEY] = orgs[DEFAULT_ORG].parts
    for part in (part for parts in PARTS.values() for part in parts):
        for method, path, attr in part.routes:
            app.router.add_route(method, path, _dispatch(orgs, part.name, attr))

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({f"{m} {p}": n for (m, p), n in sorted(state.requests.items())})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def request_log(request: web.Request) -> web.Response:
        """Every request with its arrival time, status (null if none was sent),
        organisation and the fingerprint of the key it sent (``state.key_fingerprint``).

        ``?since=<unix time>``, ``?route=<template>`` and ``?org=<organisation>`` filter.
        """
        since = float(request.query.get("since", "0"))
        route = request.query.get("route")
        org = request.query.get("org")
        return web.json_response(
            [
                {
                    "t": e.t,
                    "method": e.method,
                    "route": e.route,
                    "path": e.path,
                    "status": e.status,
                    "org": e.org,
                    "key": e.key,
                }
                for e in state.log
                if e.t >= since and (route is None or e.route == route) and (org is None or e.org == org)
            ]
        )

    app.router.add_get("/_sim/requests", stats)
    app.router.add_get("/_sim/requests/log", request_log)
    app.router.add_get("/_sim/health", health)
    return app


def _dispatch(orgs: dict[str, Organisation], part: str, attr: str) -> Handler:
    """A handler that passes the request to the handler of the caller's organisation."""

    async def handle(request: web.Request) -> web.StreamResponse:
        name = CALLER_ORG.get() or request.query.get("org", DEFAULT_ORG)
        org = orgs.get(name)
        if org is None:
            return web.json_response({"error": f"no organisation {name!r}"}, status=404)
        handler: Handler = getattr(org.parts[part], attr)
        return await handler(request)

    return handle


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
