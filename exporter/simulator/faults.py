"""Fault injection for any simulated endpoint, scripted through ``/_sim/faults``.

A middleware, so it applies to every endpoint, present or added later, keyed by
path (the request path or the route template) and optionally by method and query
parameters. ``POST /_sim/faults`` adds a rule, ``GET`` lists them, ``DELETE`` clears
them (all, or one with ``?id=``). A rule::

    {"path": "/v1/queue/metrics", "match": {"model": "acme/beta"}, "kind": "status",
     "status": 429, "headers": {"Retry-After": "2"}, "times": 3}

Kinds:

- ``status``: answer ``status`` with a vendor-shaped error body (``message`` optional)
  and the given ``headers`` (429 with ``Retry-After`` or ``x-ratelimit-reset``, 5xx, 401, 404);
- ``delay``: wait ``delay`` seconds, then answer normally (a timeout for the client);
- ``reset``: drop the connection with a TCP reset, without answering;
- ``body``: answer 200 with the raw text ``body`` as JSON (malformed JSON, NaN, Infinity);
- ``json``: answer 200 with the document ``json`` (schema drift: missing or extra
  fields, wrong types);
- ``truncate``: announce a ``body`` and send only its first half, then close;
- ``oversized``: answer 200 with a JSON body of ``size`` bytes.

``times`` limits a rule to its next N matching requests; without it the rule holds
until cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

KINDS = ("status", "delay", "reset", "body", "json", "truncate", "oversized")
_DEFAULT_BODY = '{"messages_running": 1, "messages_waiting": 2, "total_jobs": 3}'


@dataclass
class Fault:
    id: int
    path: str
    kind: str
    method: str | None = None
    match: dict[str, str] = field(default_factory=dict)
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "simulated failure"
    body: str = _DEFAULT_BODY
    json: Any = None
    delay: float = 30.0
    size: int = 1024 * 1024
    times: int | None = None
    hits: int = 0

    def matches(self, request: web.Request, template: str) -> bool:
        if self.path not in (request.path, template):
            return False
        if self.method is not None and self.method.upper() != request.method:
            return False
        return all(request.query.get(k) == v for k, v in self.match.items())


def _parse(doc: Any, fault_id: int) -> Fault:
    if not isinstance(doc, dict) or "path" not in doc or "kind" not in doc:
        raise ValueError("a fault needs at least path and kind")
    if doc["kind"] not in KINDS:
        raise ValueError(f"unknown kind {doc['kind']!r}; one of {', '.join(KINDS)}")
    known = set(Fault.__dataclass_fields__) - {"id", "hits"}
    unknown = set(doc) - known
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    fault = Fault(id=fault_id, **doc)
    fault.match = {str(k): str(v) for k, v in fault.match.items()}
    fault.headers = {str(k): str(v) for k, v in fault.headers.items()}
    return fault


async def _reset(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST instead of FIN, as a crashed proxy would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise asyncio.CancelledError


async def _truncate(request: web.Request, body: str) -> web.StreamResponse:
    data = body.encode()
    resp = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Content-Length": str(len(data))}
    )
    await resp.prepare(request)
    await resp.write(data[: len(data) // 2])
    return await _reset(request)


async def _oversized(request: web.Request, size: int) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    chunk = b"x" * 65536
    with contextlib.suppress(ConnectionError):
        await resp.write(b'{"pad": "')
        sent = 0
        while sent < size:
            await resp.write(chunk)
            sent += len(chunk)
        await resp.write(b'"}')
        await resp.write_eof()
    return resp


class Faults:
    def __init__(self) -> None:
        self.rules: list[Fault] = []
        self._ids = itertools.count(1)

    def find(self, request: web.Request, template: str) -> Fault | None:
        for fault in self.rules:
            if fault.matches(request, template):
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.rules.remove(fault)
                return fault
        return None

    async def apply(self, fault: Fault, request: web.Request, handler: Handler) -> web.StreamResponse:
        if fault.kind == "status":
            body = {"error": {"message": fault.message, "type": "simulated", "code": str(fault.status)}}
            return web.json_response(body, status=fault.status, headers=fault.headers)
        if fault.kind == "delay":
            await asyncio.sleep(fault.delay)
            return await handler(request)
        if fault.kind == "reset":
            return await _reset(request)
        if fault.kind == "body":
            return web.Response(text=fault.body, content_type="application/json", headers=fault.headers)
        if fault.kind == "json":
            return web.Response(text=json.dumps(fault.json), content_type="application/json")
        if fault.kind == "truncate":
            return await _truncate(request, fault.body)
        return await _oversized(request, fault.size)

    def middleware(self) -> Middleware:
        @web.middleware
        async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/_sim/"):
                return await handler(request)
            resource = request.match_info.route.resource
            template = resource.canonical if resource is not None else request.path
            fault = self.find(request, template)
            if fault is None:
                return await handler(request)
            return await self.apply(fault, request, handler)

        return mw

    async def add(self, request: web.Request) -> web.Response:
        try:
            doc = await request.json()
            docs = doc if isinstance(doc, list) else [doc]
            faults = [_parse(d, next(self._ids)) for d in docs]
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.rules.extend(faults)
        return web.json_response({"ids": [f.id for f in faults]})

    async def show(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(f) for f in self.rules])

    async def clear(self, request: web.Request) -> web.Response:
        wanted = request.query.get("id")
        before = len(self.rules)
        self.rules = [f for f in self.rules if wanted is not None and str(f.id) != wanted]
        return web.json_response({"cleared": before - len(self.rules)})

    def install(self, app: web.Application) -> None:
        app.router.add_post("/_sim/faults", self.add)
        app.router.add_get("/_sim/faults", self.show)
        app.router.add_delete("/_sim/faults", self.clear)
