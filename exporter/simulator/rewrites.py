"""Answers written differently: text replaced in every API answer's body on its way out.

``POST /_sim/rewrites`` {"find": "sk-…", "replace": "\\u0073k-…"} adds a rule, ``DELETE``
clears them all. A vendor may write what it echoes with JSON escapes (``\\u0073`` for
``s``, ``\\/`` for ``/``), which the simulator's own encoder never does; with a rule,
every answer that holds ``find`` holds ``replace`` instead, as such a vendor would send it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Rewrites:
    def __init__(self) -> None:
        self.rules: list[tuple[bytes, bytes]] = []

    def middleware(self) -> Middleware:
        @web.middleware
        async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
            resp = await handler(request)
            if self.rules and isinstance(resp, web.Response) and isinstance(resp.body, bytes):
                body = resp.body
                for find, replace in self.rules:
                    body = body.replace(find, replace)
                resp.body = body
            return resp

        return mw

    async def add(self, request: web.Request) -> web.Response:
        doc = await request.json()
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("find"), str)
            or not isinstance(doc.get("replace"), str)
        ):
            return web.json_response({"error": "a rewrite needs find and replace, both strings"}, status=400)
        self.rules.append((doc["find"].encode(), doc["replace"].encode()))
        return web.json_response({"rules": len(self.rules)})

    async def clear(self, request: web.Request) -> web.Response:
        self.rules.clear()
        return web.json_response({"rules": 0})

    def install(self, app: web.Application) -> None:
        app.router.add_post("/_sim/rewrites", self.add)
        app.router.add_delete("/_sim/rewrites", self.clear)
