"""Error bodies in the vendors' shapes."""

from __future__ import annotations

from aiohttp import web


def queue_error(
    status: int, code: str, message: str, *, type_: str, param: str | None = None
) -> web.Response:
    """A Together ``QueueError`` body: code, message, type and optionally param."""
    body: dict[str, str] = {"code": code, "message": message, "type": type_}
    if param is not None:
        body["param"] = param
    return web.json_response(body, status=status)


def unauthorized() -> web.Response:
    return queue_error(401, "invalid_api_key", "Invalid API key provided.", type_="authentication_error")
